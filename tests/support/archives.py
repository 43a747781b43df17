"""Input archive folders for tests, laid out as the archive export writes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def make_archive(folder: Path, files: dict[str, bytes], kind: str = "deb") -> dict[str, str]:
    """DIR/index.json + DIR/files/<sha256>; returns name → sha256."""
    (folder / "files").mkdir(parents=True)
    entries, shas = [], {}
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        (folder / "files" / sha).write_bytes(data)
        entries.append(
            {"name": name, "kind": kind, "size": len(data), "sha256": sha, "locks": ["lock/debian.lock.json"]}
        )
        shas[name] = sha
    index = {"format": "hpsforge-archive/1", "entries": entries}
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return shas


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path: two archives are equal when these are."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
