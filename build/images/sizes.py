"""What an image weighs unpacked: the sizes of its regular files (`nox -s images` prints it beside
the compressed size), measured once per image digest and kept.

An image built with an OCI layout in the cache (base, rc, runtimes) is measured from its layers,
each layer read once and kept by its digest (the pipelines share their runtime's). An image built
straight into the engine (the pipelines, the converter) has no layout, and `docker image save`
would cost 15 s an image on 2 cores: its filesystem is walked in a throwaway container of it
instead (no network, the image's own python3; each hard-linked file once). The two agree within a
few kilobytes (2026-12-06, the cpu runtime: 1716395692 against 1716393185 bytes)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

from python_on_whales import DockerException, docker

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
from hpsforge.images.buildkit import layout_blob, layout_dir, layout_manifest
from hpsforge.inputs.store import cache_root
from hpsforge.locks.images_lock import ImageRecord

# Walks / without crossing into the mounts Docker adds (/proc, /sys, /dev, /etc/hosts...).
_WALK = """
import os, stat
root_dev, seen, total = os.lstat("/").st_dev, set(), 0
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == root_dev]
    for name in files:
        info = os.lstat(os.path.join(top, name))
        if stat.S_ISREG(info.st_mode) and info.st_dev == root_dev and (info.st_ino not in seen):
            seen.add(info.st_ino)
            total += info.st_size
print(total)
"""


def unpacked_size(record: ImageRecord) -> int:
    """Bytes of the image's files (kept per image digest)."""
    layout = layout_dir(record.digest)
    has_layout = (layout / "index.json").exists()
    return _remembered("images", record.digest, lambda: _layers_size(layout) if has_layout else _walked_size(record))


def _remembered(kind: str, digest: str, measure: Callable[[], int]) -> int:
    """A size kept under cache/sizes/<kind>/<digest>, measured the first time it is asked for."""
    remembered = cache_root() / "sizes" / kind / digest.removeprefix("sha256:")
    if remembered.exists():
        return int(remembered.read_text())
    total = measure()
    atomic_write_text(remembered, f"{total}\n")
    return total


def _layers_size(layout: Path) -> int:
    return sum(_layer_size(layout, layer["digest"]) for layer in layout_manifest(layout)["layers"])


def _layer_size(layout: Path, digest: str) -> int:
    def measure() -> int:
        with tarfile.open(layout_blob(layout, digest), mode="r|*") as files:
            return sum(entry.size for entry in files if entry.isfile())

    return _remembered("layers", digest, measure)


def _walked_size(record: ImageRecord) -> int:
    try:
        output = docker.run(record.reference, ["-c", _WALK], entrypoint="python3", networks=["none"], remove=True)
        return int(str(output).strip().splitlines()[-1])
    except (DockerException, ValueError, IndexError) as error:
        raise HpsforgeError(f"cannot measure {record.reference}'s files: {error}") from None
