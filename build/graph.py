"""The build graph's shared trunk: the base image and the rc image built on it."""

from __future__ import annotations

from hpsforge import base, buildkit, debian, rc
from hpsforge.config import ProjectConfig


def build_shared_images(config: ProjectConfig, *, no_cache: bool = False, record: bool = True,
                        base_lock: debian.DebianLock | None = None,
                        rc_lock_text: str | None = None) -> dict[str, buildkit.ImageRecord]:
    """The images every target builds on, from the given locks (default: the files in lock/)."""
    base_image = base.build(config, lock=base_lock, no_cache=no_cache, record=record)
    rc_image = rc.build(config, base_image, lock_text=rc_lock_text, no_cache=no_cache, record=record)
    return {base.ROLE: base_image, rc.ROLE: rc_image}
