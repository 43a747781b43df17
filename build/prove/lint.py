"""The code's own checks (`nox -s lint`; `unit` and `tests` run it first), each configured in
pyproject.toml: ruff's lint and format check, mypy --strict on hpsforge, import-linter's contracts.

Every check runs, so one run names every failure; any failure fails the session.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.settings import PROJECT_ROOT

TIMEOUT_S = 600  # each takes seconds; a hung tool must not hold CI

# What fixes each check's findings.
FIXES = {
    "ruff check": "`ruff check --fix` fixes what it can; the rest is named above",
    "ruff format": "`ruff format` rewrites the files named above",
    "mypy": "annotate what mypy names above",
    "import-linter": "the import named above breaks a floor (pyproject.toml [tool.importlinter])",
}


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)  # the locked environment's own copy


def _console(name: str, *command: str | Path) -> bool:
    """Run a check on the user's terminal; whether it found nothing."""
    result = proc.run(
        command, cwd=PROJECT_ROOT, output="console", check=False, timeout=TIMEOUT_S, what=f"{name} could not run"
    )
    return result.ok


def _mypy() -> bool:
    """mypy -p hpsforge, its messages naming build/ files. mypy cannot follow the editable install's
    import hook (build/ imported as hpsforge), so it reads the package through a link of that name,
    made afresh each run: no cache (a cached message would name an earlier run's link)."""
    with tempfile.TemporaryDirectory(prefix="hpsforge-mypy-") as tmp:
        (Path(tmp) / "hpsforge").symlink_to(PROJECT_ROOT / "build", target_is_directory=True)
        result = proc.run(
            [
                _tool("mypy"),
                "--config-file",
                PROJECT_ROOT / "pyproject.toml",
                "--cache-dir",
                os.devnull,
                "-p",
                "hpsforge",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "MYPYPATH": tmp},
            check=False,
            timeout=TIMEOUT_S,
            what="mypy could not run",
        )
        print(result.stdout.replace(f"{tmp}/hpsforge/", "build/"), end="", flush=True)
        print(result.stderr, end="", file=sys.stderr, flush=True)
    return result.ok


def check() -> None:
    """Run every check; fail naming the ones that found something."""
    config = PROJECT_ROOT / "pyproject.toml"
    checks: dict[str, Callable[[], bool]] = {
        "ruff check": lambda: _console("ruff check", _tool("ruff"), "check", "."),
        "ruff format": lambda: _console("ruff format", _tool("ruff"), "format", "--check", "."),
        "mypy": _mypy,
        "import-linter": lambda: _console("import-linter", _tool("lint-imports"), "--no-logo", "--config", config),
    }
    failed = []
    for name, run in checks.items():
        print(f"hpsforge: lint: {name}", flush=True)
        if not run():
            failed.append(name)
    if failed:
        raise HpsforgeError(
            f"lint: {', '.join(failed)} found problems (above)",
            hint="; ".join(FIXES[name] for name in failed),
        )
    print("hpsforge: lint: ruff, mypy and import-linter found nothing", flush=True)
