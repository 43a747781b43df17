"""The code's checks (prove/lint.py): ruff sees the package in build/ (a folder that tools and
.gitignore templates skip as build output) and leaves the files that go into images alone; a check
that finds something fails the session, naming it and its fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.prove import lint

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"
IMAGE_FILES = re.compile(r"^(pipelines/[^/]+/server|sdk/server|dockerfiles)/")


def _ruff_files(*paths: str) -> set[str]:
    result = subprocess.run(
        [str(RUFF), "check", "--show-files", *paths],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {Path(line).relative_to(PROJECT_ROOT).as_posix() for line in result.stdout.splitlines() if line.strip()}


def test_ruff_checks_every_module_of_the_package_and_the_scripts():
    files = _ruff_files(".")
    modules = {path.relative_to(PROJECT_ROOT).as_posix() for path in (PROJECT_ROOT / "build").rglob("*.py")}
    assert modules and modules <= files
    assert {"noxfile.py", "noxw", "bench/loadgen.py", "sdk/client/src/hps_client/client.py"} <= files


def test_ruff_leaves_the_files_that_go_into_images_alone():
    assert [name for name in _ruff_files(".") if IMAGE_FILES.match(name)] == []
    # Named on the command line (an editor, a hook), they stay out too.
    assert _ruff_files("sdk/server/hps_server/wire.py", "dockerfiles/hps-serve") == set()


def test_a_check_that_finds_something_fails_naming_it_and_its_fix(monkeypatch, capsys):
    monkeypatch.setattr(lint, "_console", lambda name, *command: name != "ruff format")
    monkeypatch.setattr(lint, "_mypy", lambda: False)
    with pytest.raises(HpsforgeError) as failed:
        lint.check()
    assert failed.value.message == "lint: ruff format, mypy found problems (above)"
    assert failed.value.hint == f"{lint.FIXES['ruff format']}; {lint.FIXES['mypy']}"
    assert "hpsforge: lint: import-linter" in capsys.readouterr().out  # every check ran
