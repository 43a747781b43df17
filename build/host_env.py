"""The host environment's lock (lock/host-requirements.txt), which ./noxw installs into .venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpsforge.config import LOCK_DIR, PROJECT_ROOT
from hpsforge.errors import HpsforgeError

HOST_LOCK = LOCK_DIR / "host-requirements.txt"
# The host's own pip settings (local wheel folders, extra indexes, caps) must not shape the lock.
IGNORED_PIP_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")


def relock(upgrade: bool = False) -> None:
    """Compile pyproject.toml's pinned dependencies (and the test extra) with hashes."""
    env = {key: value for key, value in os.environ.items() if key not in IGNORED_PIP_SETTINGS}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [
        str(Path(sys.executable).parent / "pip-compile"), "--quiet", "--generate-hashes", "--allow-unsafe",
        "--strip-extras", "--extra", "test", "--no-emit-index-url", "--no-emit-find-links",
        "--output-file", str(HOST_LOCK.relative_to(PROJECT_ROOT)), "pyproject.toml",
        *(["--upgrade"] if upgrade else []),
    ]
    if subprocess.run(command, cwd=PROJECT_ROOT, env=env).returncode != 0:
        raise HpsforgeError("pip-compile could not lock the host environment (output above)")
    print(f"hpsforge: {HOST_LOCK.relative_to(PROJECT_ROOT)} written; ./noxw reinstalls .venv on its next run",
          flush=True)
