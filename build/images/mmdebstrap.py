"""mmdebstrap, which both resolves package sets (freeze) and builds the base rootfs (images)."""

from __future__ import annotations

import os
import shutil

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError

# A rootfs build takes a minute or two and a freeze's resolution downloads a few hundred .debs;
# far beyond that, a mirror or a hook is hanging.
MMDEBSTRAP_TIMEOUT_S = 1800
VERSION_TIMEOUT_S = 60


def require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise HpsforgeError(
            "mmdebstrap is not installed", hint="as root on Debian, `./noxw -s engine` installs the pinned host tools"
        )


def mmdebstrap_version() -> str:
    require_mmdebstrap()
    return proc.run(
        ["mmdebstrap", "--version"], what="asking mmdebstrap its version failed", timeout=VERSION_TIMEOUT_S
    ).stdout.strip()


def run_mmdebstrap(arguments: list[str], epoch: int | None = None) -> None:
    """mmdebstrap with a C locale (and SOURCE_DATE_EPOCH when building); its log tail on failure."""
    require_mmdebstrap()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    proc.run(
        ["mmdebstrap", *arguments], env=env, output="merge", what="mmdebstrap failed", timeout=MMDEBSTRAP_TIMEOUT_S
    )
