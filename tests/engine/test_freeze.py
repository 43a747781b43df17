"""freeze of the Debian locks against a local, signed stand-in of the mirror: hermetic, so these
tests prove hpsforge, not the live mirror's state of the day (tests/network covers the live one)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hpsforge.locks import debian
from hpsforge.locks.debian import DebianLock
from tests.support.local_mirror import local_mirror

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _freeze(*locks: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), "-s", "freeze", "--", *locks],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module", params=["engine", "base"])
def mirror(request, tmp_path_factory, signing_key, engine_status):
    """(lock name, its committed file, a local mirror of exactly that lock's files)."""
    lock_path = {"engine": debian.engine_lock_path(), "base": debian.base_lock_path()}[request.param]
    with local_mirror(tmp_path_factory.mktemp(f"local-mirror-{request.param}"), signing_key, lock_path) as served:
        yield request.param, lock_path, served


@pytest.fixture
def lock_dir(tmp_path):
    """A copy of lock/ for the freeze to write: no test writes a tracked file."""
    copy = tmp_path / "lock"
    shutil.copytree(PROJECT_ROOT / "lock", copy)
    return copy


def test_a_freeze_twice_gives_the_committed_lock(mirror, lock_dir):
    name, committed, served = mirror
    env = {"HPSFORGE_CONFIG": str(served.config), "HPSFORGE_LOCK_DIR": str(lock_dir)}
    first = _freeze(name, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    frozen = (lock_dir / committed.name).read_bytes()
    second = _freeze(name, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"lock/{committed.name}: unchanged" in second.stdout
    assert (lock_dir / committed.name).read_bytes() == frozen, f"{committed.name} changed on a second freeze"
    # The same packages, files, sizes, hashes and snapshot URLs as the committed lock, resolved by
    # the same code from the same universe of files: the closure is exactly the lock.
    here = [served.upstream(p) for p in DebianLock.read(lock_dir / committed.name).packages]
    assert here == DebianLock.read(committed).packages
    if name == "engine":
        assert "/debian/dists/trixie/InRelease" in served.server.requests


@pytest.mark.parametrize("mirror", ["engine"], indirect=True)  # engine packages are declared by constraint
def test_a_constraint_the_mirror_cannot_meet_fails_listing_what_it_has(mirror, lock_dir, tmp_path):
    _, _, served = mirror
    text = served.config.read_text().replace(
        'version = ">= 26.1.5, << 26.2~", suite = "trixie" }', 'version = ">= 27.0, << 27.1~", suite = "trixie" }', 1
    )
    config = tmp_path / "hpsforge.toml"
    config.write_text(text)
    before = {path.name: path.read_bytes() for path in lock_dir.glob("*.json")}
    result = _freeze("engine", env={"HPSFORGE_CONFIG": str(config), "HPSFORGE_LOCK_DIR": str(lock_dir)})
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "no version of engine package docker-cli in trixie satisfies '>= 27.0, << 27.1~'" in output
    assert "(the mirror has: 26.1.5+dfsg1-9+deb13u1+b1)" in output
    assert {path.name: path.read_bytes() for path in lock_dir.glob("*.json")} == before  # nothing written
