"""mmdebstrap, which both resolves package sets (freeze) and builds the base rootfs (images)."""

from __future__ import annotations

import os
import shutil
import subprocess

from hpsforge.core.errors import HpsforgeError


def require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise HpsforgeError("mmdebstrap is not installed",
                            hint="as root on Debian, `./noxw -s engine` installs the pinned host tools")


def run_mmdebstrap(arguments: list[str], epoch: int | None = None) -> None:
    """mmdebstrap with a C locale (and SOURCE_DATE_EPOCH when building); its log tail on failure."""
    require_mmdebstrap()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    result = subprocess.run(["mmdebstrap", *arguments], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-25:])
        raise HpsforgeError(f"mmdebstrap failed (exit {result.returncode}):\n{tail}")


