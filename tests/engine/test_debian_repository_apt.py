"""Real apt (through mmdebstrap) accepts the hermetic repository of tests/support: the base lock's
.debs, signed by a throwaway key and served on 127.0.0.1, install an essential system; the same
repository checked against another key is refused."""

from __future__ import annotations

import lzma
import os
import subprocess
from pathlib import Path

import pytest

from hpsforge.core.config import load_config
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.debian import DebianLock, base_lock_path
from tests.support.debian_repository import (
    HttpStandIn,
    SigningKey,
    archive_of,
    repository_from_packages,
)

SUITES = {"debian": "bookworm", "debian-security": "bookworm-security"}
EMPTY_SUITES = [("debian", "bookworm-updates")]


@pytest.fixture(scope="module")
def lock() -> DebianLock:
    lock = DebianLock.read(base_lock_path())
    debs.fetch(lock, ContentStore())  # downloads only what the store lacks; re-hashes the rest
    return lock


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, signing_key, lock):
    root = tmp_path_factory.mktemp("mirror")
    repository_from_packages(root, signing_key, lock.packages, SUITES, EMPTY_SUITES)
    with HttpStandIn(root) as server:
        yield server


def mmdebstrap(keyring: Path, url: str) -> subprocess.CompletedProcess[str]:
    # The base's sources (hpsforge.toml), pointed at the stand-in: the essential set needs both
    # archives (perl-base, liblzma5, ... come from debian-security in the lock).
    sources = [
        f"deb {source.uri.replace('http://deb.debian.org', url)} {source.suite} main"
        for source in load_config().base.sources
    ]
    return subprocess.run(
        [
            "mmdebstrap",
            "--variant=essential",
            f"--keyring={keyring}",
            "--format=null",
            "bookworm",
            "/dev/null",
            *sources,
        ],
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


def test_apt_installs_the_essential_set_from_it(stand_in, signing_key, lock):
    stand_in.requests.clear()
    result = mmdebstrap(signing_key.keyring, stand_in.url)
    assert result.returncode == 0, result.stdout[-4000:]
    # apt read every suite's signed Release first, then the indices they vouch for, then .debs; the
    # empty suite's index it never fetches (the signed Release says it is 0 bytes).
    requests = stand_in.requests
    assert set(requests[:3]) == {
        "/debian/dists/bookworm/InRelease",
        "/debian/dists/bookworm-updates/InRelease",
        "/debian-security/dists/bookworm-security/InRelease",
    }, requests[:10]
    assert set(requests[3:5]) == {
        "/debian/dists/bookworm/main/binary-amd64/Packages.xz",
        "/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz",
    }
    assert all(path.endswith(".deb") for path in requests[5:])
    # The essential set's .debs came from both archives' pools, at their locked paths.
    fetched = {path for path in requests if path.endswith(".deb")}
    locked = {f"/{archive_of(p.uri)}/{p.filename}": p.name for p in lock.packages}
    assert fetched <= set(locked)
    names = {locked[path] for path in fetched}
    assert {"base-files", "dpkg", "libc6", "perl-base", "liblzma5"} <= names
    assert "python3" not in names  # the essential variant only


def test_apt_refuses_it_under_another_key(stand_in, signing_key, tmp_path):
    stand_in.requests.clear()
    with SigningKey.generate(tmp_path / "other-key") as other:
        result = mmdebstrap(other.keyring, stand_in.url)
    assert result.returncode != 0
    # apt read the other keyring, found no key that made the signature, and fetched nothing the
    # refused Release would have vouched for.
    assert f"NO_PUBKEY {signing_key.fingerprint[-16:]}" in result.stdout, result.stdout[-4000:]
    assert "/debian/dists/bookworm/InRelease" in stand_in.requests
    assert not any(path.endswith((".deb", "Packages.xz")) for path in stand_in.requests), stand_in.requests


def test_apt_refuses_an_index_altered_after_signing(tmp_path, signing_key, lock):
    root = tmp_path / "mirror"
    repository_from_packages(root, signing_key, lock.packages, SUITES, EMPTY_SUITES)
    index = root / "debian/dists/bookworm/main/binary-amd64/Packages.xz"
    packages = lzma.decompress(index.read_bytes())
    index.unlink()
    index.write_bytes(lzma.compress(packages.replace(b"Priority: optional", b"Priority: extra")))
    with HttpStandIn(root) as server:
        result = mmdebstrap(signing_key.keyring, server.url)
    assert result.returncode != 0
    assert "Hash Sum mismatch" in result.stdout or "unexpected size" in result.stdout, result.stdout[-4000:]
    assert not any(path.endswith(".deb") for path in server.requests)
