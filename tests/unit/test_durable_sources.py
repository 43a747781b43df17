"""A locked .deb is taken from the mirror, then snapshot.debian.org, then an input archive; local
HTTP servers stand in for the mirror and the snapshot service."""

from __future__ import annotations

import hashlib
import socket

import pytest

from hpsforge.core.errors import HashMismatchError, InputUnavailableError
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.debian import DebianLock, DebPackage
from tests.support.archives import make_archive
from tests.support.debian_repository import HttpStandIn

DATA = b"the bytes of a locked .deb\n" * 500
FILENAME = "pool/main/t/thing/thing_1.0-1_amd64.deb"


@pytest.fixture
def store(tmp_path, monkeypatch) -> ContentStore:
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HPSFORGE_ARCHIVE", raising=False)
    return ContentStore()


@pytest.fixture
def places(tmp_path):
    """(mirror, snapshot) stand-ins, each serving the file at its own path."""
    sha1 = hashlib.sha1(DATA).hexdigest()
    (tmp_path / "mirror" / "debian" / FILENAME).parent.mkdir(parents=True)
    (tmp_path / "mirror" / "debian" / FILENAME).write_bytes(DATA)
    (tmp_path / "snapshot" / "file").mkdir(parents=True)
    (tmp_path / "snapshot" / "file" / sha1).write_bytes(DATA)
    with HttpStandIn(tmp_path / "mirror") as mirror, HttpStandIn(tmp_path / "snapshot") as snapshot:
        yield mirror, snapshot


def _lock(mirror: HttpStandIn, snapshot: HttpStandIn | str) -> DebianLock:
    snapshot_root = snapshot if isinstance(snapshot, str) else snapshot.url
    package = DebPackage(
        name="thing",
        version="1.0-1",
        architecture="amd64",
        uri=f"{mirror.url}/debian",
        filename=FILENAME,
        size=len(DATA),
        sha256=hashlib.sha256(DATA).hexdigest(),
        snapshot=f"{snapshot_root}/file/{hashlib.sha1(DATA).hexdigest()}",
        priority="optional",
    )
    return DebianLock(input_sha256="0" * 64, packages=[package])


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_the_mirror_comes_first(store, places):
    mirror, snapshot = places
    assert debs.fetch(_lock(mirror, snapshot), store)[0].read_bytes() == DATA
    assert mirror.requests == [f"/debian/{FILENAME}"] and snapshot.requests == []


def test_a_file_gone_from_the_mirror_comes_from_the_snapshot(store, places):
    mirror, snapshot = places
    mirror.gone.add(f"/debian/{FILENAME}")
    assert debs.fetch(_lock(mirror, snapshot), store)[0].read_bytes() == DATA
    assert mirror.requests == [f"/debian/{FILENAME}"]
    assert snapshot.requests == [f"/file/{hashlib.sha1(DATA).hexdigest()}"]


def test_with_mirror_down_and_snapshot_unreachable_an_archive_serves_it(store, places, tmp_path, monkeypatch):
    mirror, snapshot = places
    lock = _lock(mirror, snapshot)
    mirror.stop()
    snapshot.stop()
    make_archive(tmp_path / "archive", {lock.packages[0].deb_name: DATA})
    monkeypatch.setenv("HPSFORGE_ARCHIVE", str(tmp_path / "archive"))
    assert debs.fetch(lock, store)[0].read_bytes() == DATA


def test_when_every_place_fails_the_error_names_the_file_the_three_places_and_the_ways_out(
    store, places, tmp_path, monkeypatch
):
    mirror, snapshot = places
    mirror.gone.add(f"/debian/{FILENAME}")
    lock = _lock(mirror, _closed_port())
    (tmp_path / "empty-archive" / "files").mkdir(parents=True)
    monkeypatch.setenv("HPSFORGE_ARCHIVE", str(tmp_path / "empty-archive"))
    with pytest.raises(InputUnavailableError) as refused:
        debs.fetch(lock, store)
    message = str(refused.value)
    package = lock.packages[0]
    assert f"{package.deb_name} (sha256 {package.sha256}) cannot be had from any place" in message
    assert f"mirror    {package.url}: gone (HTTP 404)" in message
    assert f"snapshot  {package.snapshot}: unreachable" in message
    assert f"archive   {tmp_path / 'empty-archive'}: does not hold it" in message
    assert "`nox -s archive -- import DIR`" in message and "`nox -s freeze`" in message
    assert refused.value.exit_code == 4
    assert not any(path.is_file() for path in store.root.rglob("*"))


def test_bytes_that_differ_from_the_lock_are_refused_wherever_they_come_from(store, places, tmp_path):
    mirror, snapshot = places
    (tmp_path / "mirror" / "debian" / FILENAME).write_bytes(b"tampered")
    with pytest.raises(HashMismatchError) as refused:
        debs.fetch(_lock(mirror, snapshot), store)
    assert "does not match its lock" in str(refused.value) and refused.value.exit_code == 5
    assert snapshot.requests == []  # tampering is not "unavailable": no other place is tried


def test_the_unit_tests_cannot_reach_the_network():
    # A socket of its own, closed after (create_connection leaves its socket to the garbage collector).
    with socket.socket() as probe, pytest.raises(AssertionError, match="a unit test reached the network"):
        probe.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed anyway
