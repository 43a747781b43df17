"""The suite's own pytest settings (pyproject.toml): a passing xfail fails, and so does a warning
raised from hpsforge's code, in a probe run with the project's configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(source, encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-q",
            str(probe),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # summary lines in full


def test_an_xfail_that_passes_fails_the_run(tmp_path):
    result = _pytest(
        tmp_path, "import pytest\n\n\n@pytest.mark.xfail(reason='broken once')\ndef test_fixed_since():\n    pass\n"
    )
    assert result.returncode == 1, result.stdout
    assert "[XPASS(strict)] broken once" in result.stdout


def test_a_warning_raised_from_hpsforge_fails_its_test_and_no_other(tmp_path):
    result = _pytest(
        tmp_path,
        """
import warnings


def warn_from(module):
    warnings.warn_explicit("an old call", DeprecationWarning, f"{module}.py", 1, module=module)


def test_warned_from_hpsforge():
    warn_from("hpsforge.core.files")


def test_warned_from_the_package_itself():
    warn_from("hpsforge")


def test_warned_from_another_package():
    warn_from("pydantic.main")


def test_warned_from_a_look_alike():
    warn_from("hpsforgery")
""",
    )
    assert result.returncode == 1, result.stdout
    assert "2 failed, 2 passed" in result.stdout
    assert "FAILED test_probe.py::test_warned_from_hpsforge - DeprecationWarning: an old call" in result.stdout
    assert "FAILED test_probe.py::test_warned_from_the_package_itself - DeprecationWarning" in result.stdout
