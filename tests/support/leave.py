"""Images a test module alone uses leave the engine at its end, so a shared CI disk keeps its room."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from python_on_whales import docker

from hpsforge.images import buildkit


def images_leave(tagged: Callable[[str], bool]) -> None:
    """Remove every image with a tag `tagged` accepts, its cached OCI layout, and BuildKit's copies
    of the build contexts (the runtimes' wheelhouses: gigabytes)."""
    built = [image for image in docker.image.list() for tag in image.repo_tags if tagged(tag)]
    for image in {image.id: image for image in built}.values():
        docker.image.remove(image.repo_tags, force=True)
        buildkit.forget_layout(image.id)
    subprocess.run(
        ["docker", "builder", "prune", "--force", "--filter", "type=source.local"], check=True, capture_output=True
    )
