"""hpsforge.buildkit: the images lock, an OCI layout's manifest digest, and the layout cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.images.buildkit import layout_manifest_digest
from hpsforge.locks.images_lock import ImageRecord, ImagesLock

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


def _layout(path: Path, manifests: list[dict], blobs: dict[str, bytes] | None = None) -> Path:
    """An OCI layout folder: its index names `manifests`; `blobs` (name -> bytes) beside it."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    for name, data in (blobs or {}).items():
        (path / "blobs" / "sha256" / name).write_bytes(data)
    return path


def _manifest(digest: str) -> dict:
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 100}


def test_layout_manifest_digest_one(tmp_path):
    digest = "sha256:" + "d" * 64
    assert layout_manifest_digest(_layout(tmp_path / "layout", [_manifest(digest)])) == digest


@pytest.mark.parametrize("count", [0, 2])
def test_layout_manifest_digest_needs_exactly_one(tmp_path, count):
    manifests = [_manifest("sha256:" + str(i) * 64) for i in range(count)]
    layout = _layout(tmp_path / "layout", manifests)
    with pytest.raises(HpsforgeError) as caught:
        layout_manifest_digest(layout)
    assert f"found {count}" in str(caught.value)
    assert str(layout) in str(caught.value)


def test_a_folder_without_an_index_is_not_a_layout(tmp_path):
    with pytest.raises(HpsforgeError) as caught:
        layout_manifest_digest(tmp_path)
    assert "not an OCI layout" in str(caught.value)


def _built(tmp_path: Path, name: str, blobs: dict[str, bytes]) -> Path:
    """A layout as BuildKit writes one (with its ingest scratch folder)."""
    layout = _layout(tmp_path / name, [_manifest("sha256:" + "e" * 64)], blobs)
    (layout / "ingest").mkdir()
    return layout


def test_cached_layouts_share_their_common_blobs(tmp_path, monkeypatch):
    """A pipeline image's layout links the runtime's layers instead of copying them: one inode per
    blob across layouts, and each layout still holds every file of a complete OCI layout."""
    from hpsforge.images import buildkit

    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    runtime_layer, pipeline_layer = b"runtime layer" * 100, b"pipeline layer"
    buildkit._keep_layout(
        _built(tmp_path, "runtime", {"1" * 64: runtime_layer}), buildkit.layout_dir("sha256:" + "a" * 64)
    )
    buildkit._keep_layout(
        _built(tmp_path, "pipeline", {"1" * 64: runtime_layer, "2" * 64: pipeline_layer}),
        buildkit.layout_dir("sha256:" + "b" * 64),
    )
    runtime_copy = buildkit.layout_dir("sha256:" + "a" * 64) / "blobs" / "sha256" / ("1" * 64)
    pipeline_copy = buildkit.layout_dir("sha256:" + "b" * 64) / "blobs" / "sha256" / ("1" * 64)
    assert runtime_copy.samefile(pipeline_copy) and runtime_copy.read_bytes() == runtime_layer
    assert runtime_copy.stat().st_nlink == 3  # the two layouts and the shared copy
    own = buildkit.layout_dir("sha256:" + "b" * 64) / "blobs" / "sha256" / ("2" * 64)
    assert own.read_bytes() == pipeline_layer and own.stat().st_nlink == 2
    for layout in ("a", "b"):
        kept = buildkit.layout_dir("sha256:" + layout * 64)
        assert sorted(p.name for p in kept.iterdir()) == ["blobs", "index.json", "oci-layout"]  # no ingest
    assert sorted(p.name for p in buildkit.shared_blobs_dir().iterdir()) == ["1" * 64, "2" * 64]


def test_a_damaged_shared_blob_is_not_linked_into_a_new_layout(tmp_path, monkeypatch):
    from hpsforge.images import buildkit

    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    buildkit.shared_blobs_dir().mkdir(parents=True)
    (buildkit.shared_blobs_dir() / ("1" * 64)).write_bytes(b"trunc")
    buildkit._keep_layout(
        _built(tmp_path, "image", {"1" * 64: b"the whole layer"}), buildkit.layout_dir("sha256:" + "a" * 64)
    )
    blob = buildkit.layout_dir("sha256:" + "a" * 64) / "blobs" / "sha256" / ("1" * 64)
    assert blob.read_bytes() == b"the whole layer"
    assert (buildkit.shared_blobs_dir() / ("1" * 64)).read_bytes() == b"the whole layer"


def test_forgetting_a_layout_keeps_the_blobs_another_layout_links(tmp_path, monkeypatch):
    from hpsforge.images import buildkit

    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    buildkit._keep_layout(_built(tmp_path, "a", {"1" * 64: b"shared"}), buildkit.layout_dir("sha256:" + "a" * 64))
    buildkit._keep_layout(
        _built(tmp_path, "b", {"1" * 64: b"shared", "2" * 64: b"own"}), buildkit.layout_dir("sha256:" + "b" * 64)
    )
    buildkit.forget_layout("sha256:" + "b" * 64)
    assert not buildkit.layout_dir("sha256:" + "b" * 64).exists()
    assert sorted(p.name for p in buildkit.shared_blobs_dir().iterdir()) == ["1" * 64]
    assert (buildkit.layout_dir("sha256:" + "a" * 64) / "blobs" / "sha256" / ("1" * 64)).read_bytes() == b"shared"
