"""Vendor blobs: large licensed binaries (cuDNN, TensorRT) supplied by hand, checked before use.

The manifest (vendor_blobs/manifest.toml) pins each file's size and sha256; the files themselves
are never committed, so every check says where to download a missing file and where to put it.
$HPSFORGE_BLOB_MANIFEST names another manifest (read at call time): the test suite's, which
declares generated stand-ins (`standin = true`) for the NVIDIA tarballs it cannot download.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator

from hpsforge.core.config import Model, Sha256Hex, TargetName, read_toml, validate_toml
from hpsforge.core.errors import HashMismatchError, HpsforgeError, InputUnavailableError
from hpsforge.core.files import sha256_file
from hpsforge.core.settings import settings

# Hashing ~1 GB takes seconds; smaller files are checked without progress lines.
PROGRESS_BYTES = 100 * 10**6


class VendorBlob(Model):
    """One large input: where it comes from, its license, and the figures it must match."""

    name: str = Field(min_length=1)
    file: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=1)
    sha256: Sha256Hex
    url: str = Field(min_length=1)
    license: str = Field(min_length=1)
    targets: list[TargetName] = []
    note: str = ""
    # What it is, for labels and the SBOM: component "cudnn" or "tensorrt" and its version.
    component: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]*$")
    version: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)*$")
    # A generated file standing in for the real one (tests only): images built from it are
    # tagged and labelled as stand-ins and never recorded.
    standin: bool = False

    @field_validator("file")
    @classmethod
    def _bare_name(cls, value: str) -> str:
        # A path here would let the manifest point outside the blobs directory.
        if value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(f"{value!r} must be a bare file name, not a path")
        return value


class BlobManifest(Model):
    """Every vendor blob the project knows, by unique name and unique file name."""

    blobs: list[VendorBlob]
    # The file it was read from, so errors point at the manifest actually in use.
    _path: Path = PrivateAttr(default_factory=lambda: settings().blob_manifest)

    @field_validator("blobs")
    @classmethod
    def _unique(cls, blobs: list[VendorBlob]) -> list[VendorBlob]:
        for field in ("name", "file"):
            values = [getattr(blob, field) for blob in blobs]
            duplicates = sorted({value for value in values if values.count(value) > 1})
            if duplicates:
                raise ValueError(f"duplicate blob {field}: {', '.join(duplicates)}")
        return blobs

    @property
    def path(self) -> Path:
        """The manifest file these declarations were read from."""
        return self._path

    def get(self, name: str) -> VendorBlob:
        """The blob called `name`, or an error listing the names the manifest declares."""
        for blob in self.blobs:
            if blob.name == name:
                return blob
        known = ", ".join(blob.name for blob in self.blobs) or "(none)"
        raise HpsforgeError(f"unknown vendor blob {name!r}; {self._path} declares: {known}")


def blobs_dir() -> Path:
    """$HPSFORGE_BLOBS_DIR, else vendor_blobs/files in the project."""
    return settings().blobs_dir


def manifest_path() -> Path:
    """$HPSFORGE_BLOB_MANIFEST (read now, not at import), else vendor_blobs/manifest.toml."""
    return settings().blob_manifest


def load_manifest(path: Path | None = None) -> BlobManifest:
    """Read and validate the blob manifest, naming the file and each bad field."""
    path = manifest_path() if path is None else path
    manifest = validate_toml(BlobManifest, read_toml(path), path)
    manifest._path = path
    return manifest


def verify_blob(blob: VendorBlob, directory: Path) -> Path:
    """The path of `blob` in `directory`, once its size and sha256 match the manifest."""
    path = directory / blob.file
    if not path.is_file():
        raise InputUnavailableError(
            f"vendor blob {blob.name} is missing: {path}\n    download it from {blob.url}\n    license: {blob.license}",
            hint=f"download {blob.file}, accept its license, and save it as {path}",
        )
    actual_size = path.stat().st_size
    # Comparing sizes first catches a truncated download without hashing gigabytes.
    if blob.size is not None and actual_size != blob.size:
        raise HashMismatchError(
            f"vendor blob {blob.name}: {path} has the wrong size\n"
            f"    expected {blob.size} bytes\n    actual   {actual_size} bytes",
            hint=f"a partial download? download it again from {blob.url}",
        )
    big = actual_size >= PROGRESS_BYTES
    if big:
        print(f"hpsforge: checking {blob.file} ({actual_size / 1e6:.1f} MB)", flush=True)
    started = time.monotonic()
    actual_sha256 = sha256_file(path)
    if big:
        print(f"hpsforge: {blob.file} hashed in {time.monotonic() - started:.1f} s", flush=True)
    if actual_sha256 != blob.sha256:
        raise HashMismatchError(
            f"vendor blob {blob.name}: {path} does not match the manifest\n"
            f"    expected sha256 {blob.sha256}\n    actual   sha256 {actual_sha256}",
            hint=f"a corrupt or different file; download it again from {blob.url}",
        )
    return path


def verify_blobs(
    names: list[str], directory: Path | None = None, *, manifest: BlobManifest | None = None
) -> list[Path]:
    """Verify every named blob; report all problems at once so each missing file shows up."""
    manifest = load_manifest() if manifest is None else manifest
    directory = blobs_dir() if directory is None else directory
    paths, problems, kinds = [], [], set()
    for name in names:
        try:
            paths.append(verify_blob(manifest.get(name), directory))
        except HpsforgeError as error:
            problems.append(error.message + (f"\n    -> {error.hint}" if error.hint else ""))
            kinds.add(type(error))
    if problems:
        # A file that is there but wrong outranks one that is missing: its exit code says so.
        failure = HashMismatchError if HashMismatchError in kinds else InputUnavailableError
        raise failure(
            f"{len(problems)} of {len(names)} vendor blobs failed verification:\n"
            + "\n".join(f"  - {problem}" for problem in problems),
            hint=f"blobs belong in {directory} (set HPSFORGE_BLOBS_DIR to use another directory)",
        )
    return paths
