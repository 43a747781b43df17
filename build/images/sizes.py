"""What an image weighs unpacked: the sum of the file sizes in all its layers (`nox -s images`
prints it beside the compressed size)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from hpsforge.core.files import atomic_write_text
from hpsforge.inputs.store import cache_root


def _blob(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def unpacked_size(layout: Path) -> int:
    """Bytes of the image's filesystem: the sum of the file sizes in all its layers (kept per digest)."""
    remembered = cache_root() / "sizes" / layout.name
    if remembered.exists():
        return int(remembered.read_text())
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / _blob(index["manifests"][0]["digest"])).read_text())
    total = 0
    for layer in manifest["layers"]:
        with tarfile.open(layout / _blob(layer["digest"]), mode="r|*") as files:
            total += sum(entry.size for entry in files if entry.isfile())
    atomic_write_text(remembered, f"{total}\n")
    return total
