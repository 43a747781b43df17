"""hpsforge.buildkit: the images lock and reading an OCI archive's manifest digest."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from hpsforge.buildkit import ImageRecord, ImagesLock, oci_manifest_digest
from hpsforge.errors import HpsforgeError

BASE = ImageRecord(reference="hpsforge/base:abc", digest="sha256:" + "a" * 64, input_sha256="1" * 64)
RC = ImageRecord(reference="hpsforge/rc:def", digest="sha256:" + "b" * 64, input_sha256="2" * 64)


def test_read_absent_is_empty(tmp_path):
    assert ImagesLock.read(tmp_path / "images.lock.json").images == {}


def test_with_record_write_read_round_trip(tmp_path):
    path = tmp_path / "images.lock.json"
    empty = ImagesLock()
    lock = empty.with_record("base", BASE).with_record("rc", RC)
    assert empty.images == {}  # with_record returns a new lock
    assert lock.write(path) is True
    assert lock.write(path) is False
    again = ImagesLock.read(path)
    assert again == lock
    assert again.images["base"] == BASE
    assert again.images["rc"] == RC
    assert json.loads(path.read_text())["images"]["rc"]["digest"] == RC.digest


def test_with_record_replaces_a_role(tmp_path):
    newer = BASE.model_copy(update={"digest": "sha256:" + "c" * 64})
    lock = ImagesLock().with_record("base", BASE).with_record("rc", RC).with_record("base", newer)
    assert lock.images == {"base": newer, "rc": RC}


def test_write_is_canonical(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ImagesLock().with_record("base", BASE).with_record("rc", RC).write(a)
    ImagesLock().with_record("rc", RC).with_record("base", BASE).write(b)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "text",
    [
        "{ not json",
        '{"images": []}',
        '{"images": {"base": {"reference": "x"}}}',
        '{"images": {}, "extra": 1}',
    ],
)
def test_read_malformed(tmp_path, text):
    path = tmp_path / "images.lock.json"
    path.write_text(text)
    with pytest.raises(HpsforgeError) as caught:
        ImagesLock.read(path)
    assert str(path) in str(caught.value)
    assert "malformed" in str(caught.value)


def _oci_archive(path: Path, manifests: list[dict]) -> Path:
    index = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    with tarfile.open(path, "w") as archive:
        layout = b'{"imageLayoutVersion": "1.0.0"}'
        for name, data in (("oci-layout", layout), ("index.json", index)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def _manifest(digest: str) -> dict:
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 100}


def test_oci_manifest_digest_one(tmp_path):
    digest = "sha256:" + "d" * 64
    archive = _oci_archive(tmp_path / "image.oci.tar", [_manifest(digest)])
    assert oci_manifest_digest(archive) == digest


@pytest.mark.parametrize("count", [0, 2])
def test_oci_manifest_digest_needs_exactly_one(tmp_path, count):
    manifests = [_manifest("sha256:" + str(i) * 64) for i in range(count)]
    archive = _oci_archive(tmp_path / "image.oci.tar", manifests)
    with pytest.raises(HpsforgeError) as caught:
        oci_manifest_digest(archive)
    assert f"found {count}" in str(caught.value)
    assert str(archive) in str(caught.value)
