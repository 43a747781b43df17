"""Exit codes: one table (errors.ExitCode) that the error kinds, the sessions and the troubleshooting page follow."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpsforge.core import errors
from hpsforge.core.errors import ExitCode

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KINDS = [
    errors.HpsforgeError,
    errors.UsageError,
    errors.StaleLockError,
    errors.InputUnavailableError,
    errors.HashMismatchError,
    errors.DigestMismatchError,
    errors.NewInputsError,
    errors.BadSignatureError,
    errors.ProvenanceMismatchError,
    errors.NotEnoughRebuildsError,
    errors.ModelUnloadableError,
    errors.ConversionError,
    errors.ParityError,
    errors.KernelCoverageError,
]


def test_every_error_kind_has_its_own_code_and_only_success_has_none():
    codes = [kind.exit_code for kind in KINDS]
    assert all(isinstance(code, ExitCode) for code in codes)
    assert len(set(codes)) == len(KINDS)
    assert set(ExitCode) - set(codes) == {ExitCode.SUCCESS}
    assert errors.UsageError("x").exit_code == 2 and errors.NewInputsError("x").exit_code == 7


def test_the_troubleshooting_page_lists_every_exit_code():
    page = (PROJECT_ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    table = page.split("## By exit code", 1)[0]
    listed = [int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)]
    assert listed == [code.value for code in ExitCode]
    # and a section per failure, in order, saying what to do
    sections = [int(code) for code in re.findall(r"^### (\d+): ", page, flags=re.MULTILINE)]
    assert sections == [code.value for code in ExitCode if code is not ExitCode.SUCCESS]


@functools.cache  # once: nox registers each session it sees
def _noxfile():
    spec = importlib.util.spec_from_file_location("hpsforge_noxfile", PROJECT_ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_exits_with_the_code_of_the_error_it_raised(kind, caplog):
    def fails(argv: list[str]) -> None:
        raise kind("it broke", hint="fix it")

    with pytest.raises(SystemExit) as exited:
        _noxfile()._call(SimpleNamespace(posargs=[], name="images"), fails)
    assert exited.value.code == kind.exit_code.value and type(exited.value.code) is int
    assert f"Session images failed (exit {kind.exit_code.value}" in caplog.text
