"""Re-locking the host environment ./noxw installs (pyproject.toml -> lock/host-requirements.txt)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.settings import settings
from hpsforge.inputs.wheelhouse import host_pip_environment
from hpsforge.locks.pip_locks import host_lock_path


def relock(upgrade: bool = False) -> None:
    """Compile pyproject.toml's pinned dependencies (and the test extra) with hashes."""
    root, lock = settings().root, host_lock_path()
    command = [
        str(Path(sys.executable).parent / "pip-compile"), "--quiet", "--generate-hashes", "--allow-unsafe",
        "--strip-extras", "--extra", "test", "--no-emit-index-url", "--no-emit-find-links",
        "--output-file", str(lock.relative_to(root)), "pyproject.toml",
        *(["--upgrade"] if upgrade else []),
    ]
    if subprocess.run(command, cwd=root, env=host_pip_environment()).returncode != 0:
        raise HpsforgeError("pip-compile could not lock the host environment (output above)")
    print(f"hpsforge: {lock.relative_to(root)} written; ./noxw reinstalls .venv on its next run",
          flush=True)
