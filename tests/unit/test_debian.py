"""hpsforge.debian: deb822 parsing and the DebianLock model (no network, no dpkg)."""

from __future__ import annotations

import hashlib
import json

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.debian import DebianLock, DebPackage, parse_deb822

PACKAGES = """\
Package: libfoo1
Version: 1:2.3-4
Architecture: amd64
Description: the foo library
 It does foo.
 .
 And more foo.
SHA256: aaaa

Package: bar
Version: 5.0
Multi-Arch: same
Filename: pool/main/b/bar/bar_5.0_amd64.deb
"""


def test_parse_deb822_stanzas_and_continuations():
    stanzas = parse_deb822(PACKAGES)
    assert stanzas == [
        {
            "Package": "libfoo1",
            "Version": "1:2.3-4",  # only the first colon separates key and value
            "Architecture": "amd64",
            "Description": "the foo library\n It does foo.\n .\n And more foo.",
            "SHA256": "aaaa",
        },
        {
            "Package": "bar",
            "Version": "5.0",
            "Multi-Arch": "same",
            "Filename": "pool/main/b/bar/bar_5.0_amd64.deb",
        },
    ]


def test_parse_deb822_release_table_and_blank_padding():
    text = (
        "Origin: Debian\nSHA256:\n 0123 10 main/binary-amd64/Packages.xz\n"
        "\tabcd 20 main/binary-amd64/Release\n\n  \n\n\nOrigin: Other\n\n"
    )
    stanzas = parse_deb822(text)
    assert len(stanzas) == 2
    lines = stanzas[0]["SHA256"].splitlines()
    assert [line.strip() for line in lines if line.strip()] == [
        "0123 10 main/binary-amd64/Packages.xz",
        "abcd 20 main/binary-amd64/Release",
    ]
    assert stanzas[1] == {"Origin": "Other"}


def test_parse_deb822_empty():
    assert parse_deb822("") == []
    assert parse_deb822("\n\n") == []


def _package(
    name: str, version: str = "1.0-1", data: bytes | None = None, uri: str = "http://deb.example/debian"
) -> DebPackage:
    data = data if data is not None else name.encode()
    return DebPackage(
        name=name,
        version=version,
        architecture="amd64",
        uri=uri,
        filename=f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        snapshot=f"https://snapshot.example/file/{hashlib.sha1(data).hexdigest()}",
        priority="optional",
    )


@pytest.fixture
def lock() -> DebianLock:
    return DebianLock(input_sha256="1" * 64, packages=[_package("alpha"), _package("libc6", "2.36-9")])


def test_deb_name_escapes_epoch():
    package = _package("libc6", "1:2.36-9+deb12u4")
    assert package.deb_name == "libc6_1%3a2.36-9+deb12u4_amd64.deb"
    assert ":" not in package.deb_name
    assert _package("tini", "0.19.0-1").deb_name == "tini_0.19.0-1_amd64.deb"


def test_url_joins_uri_and_filename():
    package = _package("tini", "0.19.0-1")
    assert package.url == "http://deb.example/debian/pool/main/t/tini/tini_0.19.0-1_amd64.deb"


def test_read_missing_says_freeze(tmp_path):
    path = tmp_path / "engine.lock.json"
    with pytest.raises(HpsforgeError) as caught:
        DebianLock.read(path)
    assert str(path) in str(caught.value)
    assert "nox -s freeze" in str(caught.value)


def test_read_malformed_json_names_file(tmp_path):
    path = tmp_path / "debian.lock.json"
    path.write_text("{ not json", encoding="utf-8")
    with pytest.raises(HpsforgeError) as caught:
        DebianLock.read(path)
    assert str(path) in str(caught.value)
    assert "malformed" in str(caught.value)


def test_read_missing_field_names_file_and_field(tmp_path, lock):
    path = tmp_path / "debian.lock.json"
    data = json.loads(json.dumps(lock.model_dump(mode="json")))
    del data["packages"][1]["sha256"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(HpsforgeError) as caught:
        DebianLock.read(path)
    message = str(caught.value)
    assert str(path) in message
    assert "packages.1.sha256" in message


def test_read_unknown_field_is_refused(tmp_path, lock):
    path = tmp_path / "debian.lock.json"
    data = lock.model_dump(mode="json")
    data["extra"] = True
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(HpsforgeError, match="extra"):
        DebianLock.read(path)


def test_require_fresh(tmp_path, lock):
    path = tmp_path / "debian.lock.json"
    lock.require_fresh(path, "1" * 64)  # same hash: no error
    with pytest.raises(HpsforgeError) as caught:
        lock.require_fresh(path, "2" * 64)
    message = str(caught.value)
    assert "stale" in message
    assert str(path) in message
    assert "1" * 12 in message and "2" * 12 in message
    assert "nox -s freeze" in message


def test_write_is_deterministic_and_round_trips(tmp_path, lock):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert lock.write(first) is True
    assert lock.write(first) is False  # unchanged: not rewritten
    # Built independently (fields in another order), the lock is spelled the same.
    same = DebianLock.model_validate(
        {"packages": [p.model_dump() for p in lock.packages], "input_sha256": lock.input_sha256}
    )
    assert same.write(second) is True
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().endswith(b"\n")
    assert DebianLock.read(first) == lock


def test_fetch_through_store(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    package = _package("alpha", data=b"alpha deb bytes", uri=mirror.as_uri())
    deb = mirror / package.filename
    deb.parent.mkdir(parents=True)
    deb.write_bytes(b"alpha deb bytes")
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    paths = debs.fetch(DebianLock(input_sha256="1" * 64, packages=[package]), ContentStore())
    assert len(paths) == 1
    assert paths[0].read_bytes() == b"alpha deb bytes"
    assert paths[0].name == package.sha256


def test_fetch_falls_back_to_the_snapshot_then_names_every_place(tmp_path, monkeypatch):
    """The mirror dropped the file: the snapshot serves the same bytes; when it cannot either,
    the error names the file, the three places tried and the two ways out."""
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HPSFORGE_ARCHIVE", raising=False)
    data = b"beta deb bytes"
    snapshot = tmp_path / "snapshot" / "beta.deb"
    snapshot.parent.mkdir()
    snapshot.write_bytes(data)
    package = _package("beta", data=data, uri=(tmp_path / "mirror").as_uri()).model_copy(
        update={"snapshot": snapshot.as_uri()}
    )
    assert debs.fetch(DebianLock(input_sha256="1" * 64, packages=[package]), ContentStore())[0].read_bytes() == data
    gone = _package("gamma", data=b"gamma", uri=(tmp_path / "mirror").as_uri()).model_copy(
        update={"snapshot": (tmp_path / "snapshot" / "gamma.deb").as_uri()}
    )
    with pytest.raises(HpsforgeError) as refused:
        debs.fetch(DebianLock(input_sha256="1" * 64, packages=[gone]), ContentStore())
    message = str(refused.value)
    assert gone.deb_name in message and gone.sha256 in message
    assert f"mirror    {gone.url}" in message and f"snapshot  {gone.snapshot}" in message
    assert "archive   none given (HPSFORGE_ARCHIVE is unset)" in message
    assert "nox -s archive -- import DIR" in message and "nox -s freeze" in message
    assert refused.value.exit_code == 4
