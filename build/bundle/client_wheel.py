"""The client package's wheel, built by its own backend (flit_core, declared in its pyproject.toml)
through PyPA's `build`, byte for byte the same on every run.

`python -m build --wheel --no-isolation` runs with this interpreter, so flit_core comes from the
locked host environment and nothing is downloaded. flit_core makes the bytes reproducible when
SOURCE_DATE_EPOCH is set: entries sorted, every time the epoch's (clamped to 1980, zip's first
year), modes normalised to 644/755. Another epoch gives other bytes (the entries' times differ).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError

TIMEOUT_S = 300
SHOWN_LINES = 12  # of a failed build's output, quoted in the error


def _tail(output: str) -> str:
    """The end of build's output without Python traceback frames (the backend's exception line
    stays) and without build's TIP about --env-dir, which hpsforge does not pass through."""
    kept, in_traceback = [], False
    for line in output.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
            continue
        if in_traceback and line.startswith(" "):
            continue
        in_traceback = False
        if line.strip() and not line.startswith("TIP "):
            kept.append(line.rstrip())
    return "\n".join(f"    {line}" for line in kept[-SHOWN_LINES:])


def build(project_dir: Path, destination: Path, epoch: int) -> Path:
    """Build the wheel of the project in `project_dir` into `destination` (created if missing);
    the wheel's path. A wheel of the same name there is replaced whole."""
    project_dir = project_dir.resolve()
    if not (project_dir / "pyproject.toml").is_file():
        raise HpsforgeError(f"{project_dir}: no pyproject.toml to build a wheel from")
    destination.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    # Built in a private folder first: a failed build leaves nothing in `destination`.
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=destination) as tmp:
        command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp, str(project_dir)]
        # cwd: from the project root, `-m build` would import hpsforge's own build/ folder instead.
        done = proc.run(
            command,
            what=f"building the wheel of {project_dir} failed",
            timeout=TIMEOUT_S,
            cwd=tmp,
            env=env,
            output="merge",
            check=False,
        )
        if done.returncode != 0:
            raise HpsforgeError(
                f"building the wheel of {project_dir} failed (python -m build, exit {done.returncode}):\n"
                f"{_tail(done.stdout)}",
                hint=f"fix {project_dir / 'pyproject.toml'} or the package; its build backend comes from the host "
                "environment (./noxw installs lock/host-requirements.txt)",
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise HpsforgeError(
                f"building the wheel of {project_dir}: python -m build wrote "
                f"{len(wheels)} wheels, not one: {', '.join(path.name for path in wheels)}"
            )
        wheel = destination / wheels[0].name
        os.replace(wheels[0], wheel)
    return wheel
