"""What an image weighs unpacked: the sizes of the regular files of its filesystem, each hard-linked
file once (`nox -s images` prints it beside the compressed size).

Measured in a throwaway container of the image (no network, the image's own python3): a second
or two an image, where reading the layers would first need `docker image save` of images built
straight into the engine (the pipelines, the converter: 15 s each on 2 cores)."""

from __future__ import annotations

from python_on_whales import DockerException, docker

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
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
    remembered = cache_root() / "sizes" / "images" / record.digest.removeprefix("sha256:")
    if remembered.exists():
        return int(remembered.read_text())
    try:
        output = docker.run(record.reference, ["-c", _WALK], entrypoint="python3", networks=["none"], remove=True)
        total = int(str(output).strip().splitlines()[-1])
    except (DockerException, ValueError, IndexError) as error:
        raise HpsforgeError(f"cannot measure {record.reference}'s files: {error}") from None
    atomic_write_text(remembered, f"{total}\n")
    return total
