import shutil

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.images import base
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import debian
from hpsforge.locks.debian import DebianLock


def test_base_rebuilt_from_nothing_has_the_same_digest(config, engine_status):
    first = base.build(config, no_cache=True)
    second = base.build(config, no_cache=True)
    assert first.digest == second.digest
    assert first.reference == second.reference


def test_base_runs_the_locked_python(config, shared_images):
    reference = shared_images["base"].reference
    lock = DebianLock.read(debian.base_lock_path())
    locked = {p.name: p.version for p in lock.packages}
    installed = base_dpkg_versions(reference)
    assert installed == locked
    out = _run(reference, "python3", "-c", "import sys; print(sys.version_info[:2])")
    assert out.strip() == "(3, 11)"


def test_tampered_deb_is_refused_before_mmdebstrap(config, engine_status, tmp_path, monkeypatch):
    lock = DebianLock.read(debian.base_lock_path())
    victim = lock.packages[0]
    store = ContentStore()
    original = store.fetch(victim.url, victim.sha256, victim.size, victim.deb_name, "nox -s freeze")
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path))
    tampered_store = ContentStore()
    tampered = tampered_store.path(victim.sha256)
    tampered.parent.mkdir(parents=True)
    shutil.copyfile(original, tampered)
    with open(tampered, "ab") as stream:
        stream.write(b"\0")
    ran = []
    monkeypatch.setattr(base, "run_mmdebstrap", lambda *args, **kwargs: ran.append(args))
    with pytest.raises(HpsforgeError) as refused:
        base.build(config, no_cache=True)
    message = str(refused.value)
    assert victim.deb_name in message
    assert victim.sha256 in message
    assert "actual" in message and "expected" in message
    assert not ran, "mmdebstrap ran on a tampered .deb"
    assert not list((tmp_path / "rootfs").glob("*.tar")), "a rootfs was written from a tampered .deb"


def base_dpkg_versions(reference: str) -> dict[str, str]:
    listing = _run(reference, "dpkg-query", "-W", "-f=${Package}\t${Version}\n")
    return dict(line.split("\t") for line in listing.splitlines())


def _run(reference: str, *command: str) -> str:
    from python_on_whales import docker

    return docker.run(reference, list(command), remove=True)
