"""hpsforge.blobs: small generated files stand in for the multi-GB cuDNN and TensorRT tarballs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import CHUNK
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import blobs
from hpsforge.inputs.blobs import (
    BlobManifest,
    blobs_dir,
    load_manifest,
    verify_blob,
    verify_blobs,
)

URL = "https://example.invalid/{file}"


def _entry(name: str, data: bytes, *, size: bool = True, targets: str = '["gpu-cu118"]') -> str:
    file = f"{name}.tar.xz"
    return (
        "[[blobs]]\n"
        f'name = "{name}"\nfile = "{file}"\n'
        + (f"size = {len(data)}\n" if size else "")
        + f'sha256 = "{hashlib.sha256(data).hexdigest()}"\n'
        f'url = "{URL.format(file=file)}"\nlicense = "Test License"\ntargets = {targets}\n'
    )


@pytest.fixture
def contents() -> dict[str, bytes]:
    return {"alpha": os.urandom(4096), "beta": os.urandom(3000), "gamma": os.urandom(5000)}


@pytest.fixture
def manifest_path(tmp_path, contents) -> Path:
    path = tmp_path / "manifest.toml"
    text = _entry("alpha", contents["alpha"]) + _entry("beta", contents["beta"])
    path.write_text(text + _entry("gamma", contents["gamma"], size=False, targets="[]"))
    return path


@pytest.fixture
def manifest(manifest_path) -> BlobManifest:
    return load_manifest(manifest_path)


@pytest.fixture
def directory(tmp_path, contents) -> Path:
    """The blobs directory with every file present and correct."""
    files = tmp_path / "files"
    files.mkdir()
    for name, data in contents.items():
        (files / f"{name}.tar.xz").write_bytes(data)
    return files


def test_correct_files_pass(manifest, directory):
    assert verify_blob(manifest.get("alpha"), directory) == directory / "alpha.tar.xz"
    paths = verify_blobs(["alpha", "beta", "gamma"], directory, manifest=manifest)
    assert paths == [directory / f"{name}.tar.xz" for name in ("alpha", "beta", "gamma")]


def test_missing_file_says_where_from_and_where_to(manifest, directory):
    (directory / "alpha.tar.xz").unlink()
    with pytest.raises(HpsforgeError) as caught:
        verify_blob(manifest.get("alpha"), directory)
    text = str(caught.value)
    assert "missing" in text
    assert URL.format(file="alpha.tar.xz") in text
    assert str(directory / "alpha.tar.xz") in text
    assert "Test License" in text


def test_short_file_reports_both_sizes_before_hashing(manifest, directory, monkeypatch):
    monkeypatch.setattr(blobs, "sha256_file", lambda path: pytest.fail("hashed a file of the wrong size"))
    (directory / "alpha.tar.xz").write_bytes(b"x" * 1000)
    with pytest.raises(HpsforgeError) as caught:
        verify_blob(manifest.get("alpha"), directory)
    assert "expected 4096 bytes" in caught.value.message
    assert "actual   1000 bytes" in caught.value.message
    assert "partial download" in caught.value.hint


def test_tampered_same_size_file_reports_both_hashes(manifest, directory, contents):
    tampered = bytes([contents["alpha"][0] ^ 1]) + contents["alpha"][1:]
    (directory / "alpha.tar.xz").write_bytes(tampered)
    with pytest.raises(HpsforgeError) as caught:
        verify_blob(manifest.get("alpha"), directory)
    assert hashlib.sha256(contents["alpha"]).hexdigest() in caught.value.message
    assert hashlib.sha256(tampered).hexdigest() in caught.value.message


def test_unknown_size_checks_only_the_hash(manifest, directory):
    (directory / "gamma.tar.xz").write_bytes(b"short")
    with pytest.raises(HpsforgeError, match="does not match the manifest"):
        verify_blob(manifest.get("gamma"), directory)


def test_all_problems_are_reported_together(manifest, directory):
    (directory / "alpha.tar.xz").unlink()
    (directory / "beta.tar.xz").write_bytes(b"partial")
    with pytest.raises(HpsforgeError) as caught:
        verify_blobs(["alpha", "beta", "gamma", "delta"], directory, manifest=manifest)
    text = caught.value.message
    assert text.startswith("3 of 4 vendor blobs failed")
    assert str(directory / "alpha.tar.xz") in text
    assert "actual   7 bytes" in text
    assert "unknown vendor blob 'delta'" in text
    assert "gamma.tar.xz" not in text  # the correct file is not reported


def test_unknown_name_lists_known_ones(manifest, manifest_path):
    with pytest.raises(HpsforgeError) as caught:
        manifest.get("delta")
    assert str(manifest_path) in caught.value.message
    assert "alpha, beta, gamma" in caught.value.message


def test_blobs_dir_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("HPSFORGE_BLOBS_DIR", raising=False)
    assert blobs_dir() == PROJECT_ROOT / "vendor_blobs" / "files"
    monkeypatch.setenv("HPSFORGE_BLOBS_DIR", str(tmp_path))
    assert blobs_dir() == tmp_path


def test_default_directory_comes_from_environment(manifest, directory, monkeypatch):
    monkeypatch.setenv("HPSFORGE_BLOBS_DIR", str(directory))
    assert verify_blobs(["beta"], manifest=manifest) == [directory / "beta.tar.xz"]


@pytest.mark.parametrize(
    ("field", "second"),
    [
        ("name", _entry("one", b"2").replace('file = "one.tar.xz"', 'file = "other.tar.xz"')),
        ("file", _entry("two", b"2").replace('file = "two.tar.xz"', 'file = "one.tar.xz"')),
    ],
)
def test_duplicates_are_refused_naming_the_file(tmp_path, field, second):
    path = tmp_path / "manifest.toml"
    path.write_text(_entry("one", b"1") + second)
    with pytest.raises(HpsforgeError) as caught:
        load_manifest(path)
    assert str(path) in caught.value.message
    assert f"duplicate blob {field}: " in caught.value.message


def test_unknown_field_is_named(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text(_entry("one", b"1") + 'checksum = "md5"\n')
    with pytest.raises(HpsforgeError) as caught:
        load_manifest(path)
    assert str(path) in caught.value.message
    assert "blobs.0.checksum: unknown field" in caught.value.message


def test_file_must_be_a_bare_name(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text(_entry("one", b"1").replace('file = "one.tar.xz"', 'file = "../one.tar.xz"'))
    with pytest.raises(HpsforgeError, match="blobs.0.file: '../one.tar.xz' must be a bare file name"):
        load_manifest(path)


def test_real_manifest_carries_the_published_figures():
    manifest = load_manifest()
    assert len(manifest.blobs) == 4
    cudnn = manifest.get("cudnn-8.9.7.29-cuda11")
    assert cudnn.size == 860967256
    assert cudnn.sha256 == "a3e2509028cecda0117ce5a0f42106346e82e86d390f4bb9475afc976c77402e"
    tensorrt = manifest.get("tensorrt-8.6.1.6-cuda11.8")
    assert tensorrt.size is None
    assert tensorrt.sha256 == "15bfe6053d45feec45ecc7123a9106076b0b43fa0435f242d89dca0778337759"


def test_real_manifest_agrees_with_target_blobs(config):
    """Each target lists exactly the blobs the manifest marks as its own."""
    manifest = load_manifest()
    for name, target in config.targets.items():
        declared = sorted(blob.name for blob in manifest.blobs if name in blob.targets)
        assert sorted(target.blobs) == declared, name


def test_large_file_is_hashed_across_chunks_with_progress(tmp_path, monkeypatch, capsys):
    data = os.urandom(20 * 10**6)
    assert len(data) > 10 * CHUNK and len(data) % CHUNK  # many full chunks and a partial one
    path = tmp_path / "manifest.toml"
    path.write_text(_entry("big", data))
    (tmp_path / "big.tar.xz").write_bytes(data)
    monkeypatch.setattr(blobs, "PROGRESS_BYTES", 10**6)
    assert verify_blob(load_manifest(path).get("big"), tmp_path) == tmp_path / "big.tar.xz"
    assert "hpsforge: checking big.tar.xz (20.0 MB)" in capsys.readouterr().out
