"""Re-locking the host environment ./noxw installs (pyproject.toml -> lock/host-requirements.txt)."""

from __future__ import annotations

import sys
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.settings import settings
from hpsforge.inputs.wheelhouse import host_pip_environment
from hpsforge.locks.pip_locks import host_lock_path

PIP_COMPILE_TIMEOUT_S = 1800  # resolves against PyPI: a few minutes, unless the index hangs


def relock(upgrade: bool = False) -> None:
    """Compile pyproject.toml's pinned dependencies (and the test extra) with hashes."""
    root, lock = settings().root, host_lock_path()
    command = [
        str(Path(sys.executable).parent / "pip-compile"),
        "--quiet",
        "--generate-hashes",
        "--allow-unsafe",
        "--strip-extras",
        "--extra",
        "test",
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--output-file",
        str(lock.relative_to(root)),
        "pyproject.toml",
        *(["--upgrade"] if upgrade else []),
    ]
    proc.run(
        command,
        cwd=root,
        env=host_pip_environment(),
        output="console",
        timeout=PIP_COMPILE_TIMEOUT_S,
        what="pip-compile could not lock the host environment",
    )
    print(f"hpsforge: {lock.relative_to(root)} written; ./noxw reinstalls .venv on its next run", flush=True)
