"""What differs between two images: config fields, layers, and the files inside differing layers.

Used by `nox -s repro` to explain a digest mismatch (a .pyc, a timestamp, an absolute path...).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from hpsforge.core import proc
from hpsforge.core.files import CHUNK
from hpsforge.images.buildkit import layout_blob, layout_manifest


@dataclass(frozen=True)
class Entry:
    """One file of a layer, with everything that can make two layers differ."""

    kind: str
    size: int
    sha256: str
    mtime: int
    mode: int
    owner: str
    link: str

    def differences(self, other: Entry) -> list[str]:
        fields = ("kind", "size", "sha256", "mtime", "mode", "owner", "link")
        return [
            f"{name} {getattr(self, name)!r} -> {getattr(other, name)!r}"
            for name in fields
            if getattr(self, name) != getattr(other, name)
        ]


class _Descriptor(TypedDict):
    digest: str  # what of an OCI descriptor the report reads


class _Manifest(TypedDict):
    config: _Descriptor
    layers: list[_Descriptor]


def _manifest(layout: Path) -> _Manifest:
    return cast(_Manifest, layout_manifest(layout))


def layer_entries(blob: Path) -> dict[str, Entry]:
    entries = {}
    with tarfile.open(blob, mode="r:*") as layer:
        for info in layer:
            digest = ""
            stream = layer.extractfile(info) if info.isfile() else None  # a stream for every regular file
            if stream is not None:
                hasher = hashlib.sha256()
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                digest = hasher.hexdigest()
            kind = (
                "file"
                if info.isfile()
                else "dir"
                if info.isdir()
                else "symlink"
                if info.issym()
                else "hardlink"
                if info.islnk()
                else "other"
            )
            entries["/" + info.name.removeprefix("./").lstrip("/")] = Entry(
                kind=kind,
                size=info.size,
                sha256=digest,
                mtime=int(info.mtime),
                mode=info.mode,
                owner=f"{info.uid}:{info.gid}",
                link=info.linkname,
            )
    return entries


def diff_layouts(first: Path, second: Path, limit: int = 200) -> list[str]:
    """Human-readable lines naming every difference between two OCI layouts' images."""
    a, b = _manifest(first), _manifest(second)
    lines = []
    config_a = json.loads(layout_blob(first, a["config"]["digest"]).read_text())
    config_b = json.loads(layout_blob(second, b["config"]["digest"]).read_text())
    for key in sorted(set(config_a) | set(config_b)):
        if config_a.get(key) != config_b.get(key):
            lines.append(f"config field {key!r} differs")
    layers_a, layers_b = a["layers"], b["layers"]
    if len(layers_a) != len(layers_b):
        lines.append(f"layer count differs: {len(layers_a)} vs {len(layers_b)}")
    for number, (layer_a, layer_b) in enumerate(zip(layers_a, layers_b, strict=False), start=1):
        if layer_a["digest"] == layer_b["digest"]:
            continue
        lines.append(f"layer {number}: {layer_a['digest']} vs {layer_b['digest']}")
        files_a = layer_entries(layout_blob(first, layer_a["digest"]))
        files_b = layer_entries(layout_blob(second, layer_b["digest"]))
        changes = []
        for path in sorted(set(files_a) | set(files_b)):
            if path not in files_b:
                changes.append(f"  only in the first:  {path}")
            elif path not in files_a:
                changes.append(f"  only in the second: {path}")
            elif files_a[path] != files_b[path]:
                changes.append(f"  changed {path}: " + "; ".join(files_a[path].differences(files_b[path])))
        if not changes:
            changes.append("  same files and metadata: the layer archives differ in order or compression")
        lines += changes[:limit] + ([f"  ... and {len(changes) - limit} more"] if len(changes) > limit else [])
    return lines


DIFFOSCOPE_FILES = 5
DIFFOSCOPE_LINES = 60
DIFFOSCOPE_TIMEOUT_S = 300  # per file; a large binary can take diffoscope minutes


def _changed_files(first: Path, second: Path) -> list[tuple[Path, Path, str]]:
    """(first layer, second layer, path) of every regular file whose content differs."""
    changed = []
    for layer_a, layer_b in zip(_manifest(first)["layers"], _manifest(second)["layers"], strict=False):
        if layer_a["digest"] == layer_b["digest"]:
            continue
        blob_a, blob_b = layout_blob(first, layer_a["digest"]), layout_blob(second, layer_b["digest"])
        files_a, files_b = layer_entries(blob_a), layer_entries(blob_b)
        changed += [
            (blob_a, blob_b, path)
            for path in sorted(set(files_a) & set(files_b))
            if files_a[path].kind == files_b[path].kind == "file" and files_a[path].sha256 != files_b[path].sha256
        ]
    return changed


def _extract(blob: Path, path: str, destination: Path) -> None:
    with tarfile.open(blob, mode="r:*") as layer:
        for info in layer:
            if "/" + info.name.removeprefix("./").lstrip("/") == path and (source := layer.extractfile(info)):
                with source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                return


def diffoscope_text(first: Path, second: Path) -> list[str]:
    """diffoscope's text for the first few files whose bytes differ (a Debian package; a note when absent)."""
    changed = _changed_files(first, second)
    if not changed:
        return []
    if shutil.which("diffoscope") is None:
        return ["", "diffoscope is not installed (Debian's diffoscope-minimal): no file-level difference shown"]
    lines = [""]
    with tempfile.TemporaryDirectory(prefix="diffoscope-") as tmp:
        for number, (blob_a, blob_b, path) in enumerate(changed[:DIFFOSCOPE_FILES]):
            a, b = Path(tmp) / f"{number}.first", Path(tmp) / f"{number}.rebuilt"
            _extract(blob_a, path, a)
            _extract(blob_b, path, b)
            # Exit 1 means "the files differ", which is why it runs; only a timeout raises.
            result = proc.run(
                [
                    "diffoscope",
                    "--text",
                    "-",
                    "--no-progress",
                    "--no-default-limits",
                    "--max-diff-block-lines",
                    str(DIFFOSCOPE_LINES),
                    a,
                    b,
                ],
                what=f"diffoscope on {path} failed",
                timeout=DIFFOSCOPE_TIMEOUT_S,
                check=False,
            )
            lines.append(f"diffoscope {path}:")
            lines += [f"  {line}" for line in result.stdout.splitlines()[:DIFFOSCOPE_LINES]]
    return lines
