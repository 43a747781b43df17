"""hpsforge.core.proc, the one way build/ runs a program: real programs, real failures."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path
from typing import IO

import pytest

from hpsforge.core import proc
from hpsforge.core.errors import HashMismatchError, HpsforgeError, InputUnavailableError
from hpsforge.core.settings import Settings

PACKAGE = Path(__file__).resolve().parents[2] / "build"


@pytest.fixture(autouse=True)
def no_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPSFORGE_ECHO", raising=False)


def _failure(command: list[str], **options: object) -> HpsforgeError:
    options.setdefault("what", "the step failed")
    options.setdefault("timeout", 30)
    with pytest.raises(HpsforgeError) as raised:
        proc.run(command, **options)  # type: ignore[arg-type]
    return raised.value


def test_a_result_carries_the_exit_code_and_both_streams() -> None:
    result = proc.run(["sh", "-c", "echo out; echo err >&2"], what="x", timeout=30)
    assert (result.returncode, result.stdout, result.stderr, result.ok) == (0, "out\n", "err\n", True)
    assert result.command == ("sh", "-c", "echo out; echo err >&2")


def test_a_failure_names_the_program_the_exit_code_and_quotes_stderr() -> None:
    error = _failure(
        ["sh", "-c", "echo progress; echo 'E: it broke' >&2; exit 3"], what="apt-get update failed", hint="re-lock"
    )
    assert type(error) is HpsforgeError and error.exit_code == 1
    assert error.message == "apt-get update failed (sh: exit code 3):\n    E: it broke"
    assert error.hint == "re-lock"
    assert str(error).endswith("\n  -> re-lock")


def test_stdout_is_quoted_when_stderr_is_silent() -> None:
    error = _failure(["sh", "-c", "echo 'the reason, on stdout'; exit 2"])
    assert "exit code 2" in error.message
    assert error.message.endswith("\n    the reason, on stdout")


def test_only_the_last_lines_are_quoted() -> None:
    error = _failure(["sh", "-c", "i=1; while [ $i -le 100 ]; do echo line $i >&2; i=$((i+1)); done; exit 1"])
    quoted = error.message.splitlines()[1:]
    assert len(quoted) == proc.TAIL_LINES == 25
    assert quoted[0] == "    line 76" and quoted[-1] == "    line 100"


def test_a_huge_line_is_cut_to_its_end() -> None:
    error = _failure(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo ' the end' >&2; exit 1"])
    assert len(error.message) < proc.TAIL_CHARS + 200
    assert error.message.endswith("the end")


def test_the_call_sites_error_kind_is_raised() -> None:
    error = _failure(
        ["sh", "-c", "echo 'gpgv: BAD signature' >&2; exit 1"],
        what="InRelease: signature does not verify",
        error=HashMismatchError,
    )
    assert type(error) is HashMismatchError and error.exit_code == 5
    assert "(sh: exit code 1)" in error.message and "gpgv: BAD signature" in error.message


def test_without_check_a_non_zero_exit_is_returned() -> None:
    result = proc.run(["sh", "-c", "echo credentials not found; exit 1"], what="x", timeout=30, check=False)
    assert (result.returncode, result.ok, result.stdout) == (1, False, "credentials not found\n")


def test_a_signal_is_named() -> None:
    error = _failure(["sh", "-c", "kill -9 $$"])
    assert "(sh: killed by SIGKILL)" in error.message


def test_a_timeout_stops_the_program_and_quotes_what_it_printed() -> None:
    started = time.monotonic()
    error = _failure(
        ["sh", "-c", "echo 'waiting for the mirror' >&2; exec sleep 30"],
        what="resolving failed",
        timeout=0.5,
        error=InputUnavailableError,
        hint="try again",
    )
    assert time.monotonic() - started < 10
    assert type(error) is InputUnavailableError
    assert error.message == "resolving failed (sh: did not finish within 0.5 s, stopped):\n    waiting for the mirror"
    assert error.hint == "try again"


def test_a_timeout_is_not_held_up_by_a_grandchild_keeping_the_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proc, "DRAIN_AFTER_KILL_S", 0.5)
    started = time.monotonic()
    error = _failure(["sh", "-c", "sleep 5 & echo begun; sleep 5"], timeout=0.5)
    assert time.monotonic() - started < 4
    assert "did not finish within 0.5 s" in error.message


def test_a_missing_program_is_a_host_problem_whatever_the_call_site_kind() -> None:
    error = _failure(
        ["hpsforge-no-such-program", "--version"], what="verifying failed", error=HashMismatchError, hint="install it"
    )
    assert type(error) is HpsforgeError and error.exit_code == 1
    assert error.message == "verifying failed (hpsforge-no-such-program: not installed, or not on PATH)"
    assert error.hint == "install it"


def test_a_missing_path_and_a_missing_working_folder_are_named(tmp_path: Path) -> None:
    assert f"{tmp_path}/bin/tool does not exist" in _failure([str(tmp_path / "bin" / "tool")]).message
    assert f"its working folder {tmp_path / 'gone'} does not exist" in _failure(["true"], cwd=tmp_path / "gone").message


def test_a_file_that_cannot_be_executed_is_named(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    assert "tool: could not start: Permission denied" in _failure([str(script)]).message


def test_input_text_and_bytes_reach_stdin() -> None:
    assert proc.run(["cat"], input="héllo", what="x", timeout=30).stdout == "héllo"
    assert proc.run(["cat"], input=b"\x00\xff", what="x", timeout=30).stdout_bytes == b"\x00\xff"


def test_no_input_means_an_empty_stdin_not_the_terminal() -> None:
    assert proc.run(["cat"], what="x", timeout=5).stdout == ""


def test_merged_output_keeps_the_order_of_one_log() -> None:
    result = proc.run(["sh", "-c", "echo one; echo two >&2; echo three"], output="merge", what="x", timeout=30)
    assert (result.stdout, result.stderr) == ("one\ntwo\nthree\n", "")
    error = _failure(["sh", "-c", "echo 'I: step'; echo 'E: broke' >&2; exit 1"], output="merge")
    assert error.message.endswith("\n    I: step\n    E: broke")


def test_console_output_is_not_captured_and_the_error_points_at_it(capfd: pytest.CaptureFixture[str]) -> None:
    error = _failure(
        ["sh", "-c", "echo 'Could not find a version'; exit 1"],
        output="console",
        what="pip-compile could not lock the host environment",
    )
    assert error.message == ("pip-compile could not lock the host environment (sh: exit code 1); its output is above")
    assert "Could not find a version" in capfd.readouterr().out


def test_stdin_written_by_a_function() -> None:
    def write(stdin: IO[bytes]) -> None:
        for _ in range(64):
            stdin.write(b"x" * 65536)

    assert proc.run(["wc", "-c"], input=write, what="x", timeout=30).stdout.strip() == str(64 * 65536)


def test_a_program_that_stops_reading_fails_by_its_own_exit_code() -> None:
    def write(stdin: IO[bytes]) -> None:
        for _ in range(64):
            stdin.write(b"x" * 65536)

    error = _failure(
        ["sh", "-c", "echo 'load: no space left' >&2; exit 4"], input=write, what="loading the image failed"
    )
    assert error.message == "loading the image failed (sh: exit code 4):\n    load: no space left"


def test_stdout_read_by_a_function_and_the_rest_drained() -> None:
    seen: list[bytes] = []
    result = proc.run(
        ["sh", "-c", "head -c 1000000 /dev/zero || exit 7; echo done >&2"],
        output=lambda out: seen.append(out.read(10)),
        what="x",
        timeout=30,
    )
    assert seen == [b"\0" * 10] and result.ok and result.stderr == "done\n" and result.stdout_bytes == b""


def test_a_readers_own_error_propagates_and_leaves_no_program_running() -> None:
    pids: list[int] = []

    def read(stdout: IO[bytes]) -> None:
        pids.append(int(stdout.readline()))
        raise ValueError("not a tar")

    with pytest.raises(ValueError, match="not a tar"):
        proc.run(["sh", "-c", "echo $$; exec sleep 30"], output=read, what="x", timeout=60)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


@pytest.mark.parametrize("streamed", ["input", "output"])
def test_a_streamed_run_times_out_too(streamed: str) -> None:
    started = time.monotonic()
    if streamed == "input":
        error = _failure(["sh", "-c", "echo stuck >&2; exec sleep 30"], input=lambda stdin: None, timeout=0.5)
    else:
        error = _failure(
            ["sh", "-c", "echo stuck >&2; exec sleep 30"], output=lambda stdout: stdout.read(), timeout=0.5
        )
    assert time.monotonic() - started < 10
    assert error.message == "the step failed (sh: did not finish within 0.5 s, stopped):\n    stuck"


def test_a_function_reading_stdout_takes_no_input() -> None:
    with pytest.raises(TypeError):
        proc.run(["cat"], input=b"x", output=lambda stdout: None, what="x", timeout=5)


def test_echo_prints_each_command_when_asked(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proc.run(["sh", "-c", "echo x"], what="x", timeout=30)
    assert "hpsforge: $" not in capfd.readouterr().err
    monkeypatch.setenv("HPSFORGE_ECHO", "1")  # read at the call, not at import
    proc.run(["sh", "-c", "echo x"], what="x", timeout=30, cwd=tmp_path)
    _failure(["hpsforge-no-such-program", "a b"])
    err = capfd.readouterr().err
    assert f"hpsforge: $ sh -c 'echo x' (in {tmp_path})\n" in err
    assert "hpsforge: $ hpsforge-no-such-program 'a b'\n" in err


def test_the_echo_setting() -> None:
    assert Settings.from_environment({}).echo is False
    assert Settings.from_environment({"HPSFORGE_ECHO": "1"}).echo is True
    assert Settings.from_environment({"HPSFORGE_ECHO": "0"}).echo is False


def test_the_name_of_a_program_run_as_a_module() -> None:
    assert proc.program_name(["/x/.venv/bin/python3", "-m", "pip", "download"]) == "python3 -m pip"
    assert proc.program_name(["/x/.venv/bin/hashin", "-r", "f"]) == "hashin"


def test_a_daemon_starts_with_its_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "daemon.log"
    daemon = proc.start(["sh", "-c", "echo up; echo warn >&2"], what="starting it failed", log=log)
    assert daemon.wait(timeout=30) == 0
    assert log.read_text() == "up\nwarn\n"
    with pytest.raises(HpsforgeError, match=r"starting it failed \(hpsforge-no-such-daemon: not installed"):
        proc.start(["hpsforge-no-such-daemon"], what="starting it failed", log=log)


def _runs_programs(tree: ast.Module) -> list[str]:
    """Imports and calls that start a program other than through proc."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            found += [f"import {name}" for name in names if name in ("subprocess", "pty", "multiprocessing")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and (
                node.attr in ("system", "popen", "fork", "forkpty")
                or node.attr.startswith(("exec", "spawn", "posix_spawn"))
            )
        ):
            found.append(f"os.{node.attr}")
    return found


def test_the_one_way_finder_finds_the_other_ways() -> None:
    assert _runs_programs(ast.parse("import subprocess\nos.system('x')\nos.execvp('x', [])")) == [
        "import subprocess",
        "os.system",
        "os.execvp",
    ]
    assert _runs_programs(ast.parse("from subprocess import run\nos.environ.get('x')")) == ["import subprocess"]


def test_build_runs_programs_only_through_proc() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "core" / "proc.py"
        and (found := _runs_programs(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


# Call sites keep their words, and gain the program's.


def test_mmdebstraps_log_tail_is_quoted_and_its_environment_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpsforge.images import mmdebstrap

    fake = tmp_path / "mmdebstrap"
    fake.write_text(
        '#!/bin/sh\necho "I: LC_ALL=$LC_ALL SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"\n'
        'echo "E: apt-get download failed" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(HpsforgeError) as raised:
        mmdebstrap.run_mmdebstrap(["--variant=essential"], epoch=1700000000)
    assert raised.value.message == (
        "mmdebstrap failed (mmdebstrap: exit code 1):\n"
        "    I: LC_ALL=C.UTF-8 SOURCE_DATE_EPOCH=1700000000\n"
        "    E: apt-get download failed"
    )
