"""Running a program: the one way hpsforge starts a subprocess.

Every failure (a non-zero exit, a timeout, a program that is not there) becomes an hpsforge error
whose message says what was being done, the program, its exit code and the last lines it printed,
plus the call site's hint; no CalledProcessError, TimeoutExpired or FileNotFoundError reaches a
user. With HPSFORGE_ECHO=1 each command is printed (to stderr) before it starts.

Output goes one of four ways:
  "capture"  stdout and stderr kept apart and returned (stdin is /dev/null unless `input` is given)
  "merge"    stderr joined to stdout, returned as stdout (a log read as one, like mmdebstrap's)
  "console"  the user's terminal, as if run by hand (nothing to quote on failure: it is above)
  a callable that reads stdout as it comes (a tar streamed out of `docker image save`)
`input` is text or bytes, or a callable that writes stdin as it goes (a tar streamed into
`docker image load`); stdout read by a function takes no input.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.settings import settings

TAIL_LINES = 25
TAIL_CHARS = 4000  # a line of a few MB (a minified JSON) must not become the whole message
# After a kill, how long to wait for the pipes to close: a grandchild holding them open must not
# turn a timeout into a hang.
DRAIN_AFTER_KILL_S = 5.0

Writer = Callable[[IO[bytes]], None]
Reader = Callable[[IO[bytes]], None]
Output = Literal["capture", "merge", "console"] | Reader


@dataclass(frozen=True)
class Result:
    """A program that ran to its end: its exit code and what it printed (empty when not captured)."""

    command: tuple[str, ...]
    returncode: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def program_name(command: Sequence[str]) -> str:
    """How a user names the program: `gpgv`, `hashin`, `python3 -m pip`."""
    name = Path(command[0]).name if command else "?"
    if len(command) > 2 and command[1] == "-m":
        return f"{name} -m {command[2]}"
    return name


def last_lines(stdout: bytes, stderr: bytes, lines: int = TAIL_LINES) -> list[str]:
    """The end of what a program printed: stderr, else stdout (a tool that reports on stdout)."""
    text = stderr.decode("utf-8", errors="replace")
    if not text.strip():
        text = stdout.decode("utf-8", errors="replace")
    text = text.strip()[-TAIL_CHARS:]
    return [line.rstrip() for line in text.splitlines()[-lines:]]


def _failure(what: str, trouble: str, tail: list[str], *, console: bool) -> str:
    message = f"{what} ({trouble})"
    if tail:
        return message + ":\n" + "\n".join(f"    {line}" for line in tail)
    return message + ("; its output is above" if console else "")


def _exit_trouble(name: str, returncode: int) -> str:
    if returncode < 0:
        try:
            return f"{name}: killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"{name}: killed by signal {-returncode}"
    return f"{name}: exit code {returncode}"


def _echo(command: Sequence[str], cwd: Path | str | None) -> None:
    where = f" (in {cwd})" if cwd is not None else ""
    print(f"hpsforge: $ {shlex.join(command)}{where}", file=sys.stderr, flush=True)


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    timeout: float | None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | bytes | Writer | None = None,
    output: Output = "capture",
    check: bool = True,
    hint: str | None = None,
    error: type[HpsforgeError] = HpsforgeError,
) -> Result:
    """Run `command` to its end and return its result.

    `what` is the call site's own sentence for a failure ("apt-get update failed", "{url}: signature
    does not verify against {keyring}"): every error message opens with it, then names the program
    and what went wrong, then quotes the program's last lines. `timeout` is required so each call site decides it:
    seconds after which the program is killed, or None for work whose length has no bound worth
    guessing (a whole build). With `check`, a non-zero exit raises `error` (the call site's kind:
    HashMismatchError for gpgv); without it the result is returned and the caller reads
    `returncode`. A timeout always raises `error`; a program that cannot start (not installed)
    raises HpsforgeError, whatever `error` is: the host lacks a tool, the input is not at fault.
    """
    argv = [os.fspath(part) for part in command]
    name = program_name(argv)
    console = output == "console"
    if callable(output) and input is not None:
        raise TypeError("proc.run: stdout read by a function takes no input")
    if settings().echo:
        _echo(argv, cwd)

    stdin: int | None = subprocess.PIPE if input is not None else (None if console else subprocess.DEVNULL)
    stdout: int | None = None if console else subprocess.PIPE
    stderr: int | None = None if console else (subprocess.STDOUT if output == "merge" else subprocess.PIPE)
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr)
    except OSError as cannot:  # the host lacks the program: not the input's fault, so never `error`
        raise HpsforgeError(
            _failure(what, _start_trouble(name, argv[0], cwd, cannot), [], console=False), hint=hint
        ) from None

    try:
        if callable(input) or callable(output):
            out, err, timed_out = _streamed(process, input, output, timeout)
        else:
            data = input.encode() if isinstance(input, str) else input
            out, err, timed_out = _communicated(process, data, timeout)
    except BaseException:
        _kill(process)  # an interrupt or a reader's own exception: leave no orphan behind
        raise

    if timed_out:
        raise error(
            _failure(
                what, f"{name}: did not finish within {timeout:g} s, stopped", last_lines(out, err), console=console
            ),
            hint=hint,
        )
    result = Result(tuple(argv), process.returncode, out, err)
    if check and not result.ok:
        raise error(
            _failure(what, _exit_trouble(name, result.returncode), last_lines(out, err), console=console), hint=hint
        )
    return result


def _start_trouble(name: str, program: str, cwd: Path | str | None, cannot: OSError) -> str:
    if isinstance(cannot, FileNotFoundError):
        if cwd is not None and cannot.filename is not None and os.fspath(cannot.filename) == os.fspath(cwd):
            return f"{name}: its working folder {cwd} does not exist"
        return f"{name}: not installed, or not on PATH" if os.sep not in program else f"{program} does not exist"
    return f"{name}: could not start: {cannot.strerror or cannot}"


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):  # a stdin whose reader is gone
                stream.close()
    process.wait()


def _communicated(
    process: subprocess.Popen[bytes], data: bytes | None, timeout: float | None
) -> tuple[bytes, bytes, bool]:
    try:
        out, err = process.communicate(data, timeout=timeout)
        return out or b"", err or b"", False
    except subprocess.TimeoutExpired:
        process.kill()
    try:  # what it printed before the kill
        out, err = process.communicate(timeout=DRAIN_AFTER_KILL_S)
    except subprocess.TimeoutExpired as held_open:  # a grandchild keeps the pipes open
        _kill(process)
        return _bytes(held_open.output), _bytes(held_open.stderr), True
    return out or b"", err or b"", True


def _bytes(partial: str | bytes | None) -> bytes:
    return partial.encode() if isinstance(partial, str) else partial or b""


def _collect(stream: IO[bytes] | None, into: list[bytes]) -> threading.Thread | None:
    if stream is None:
        return None

    def read() -> None:
        with stream:
            while chunk := stream.read(1 << 16):
                into.append(chunk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _streamed(
    process: subprocess.Popen[bytes], input: str | bytes | Writer | None, output: Output, timeout: float | None
) -> tuple[bytes, bytes, bool]:
    """Write stdin or read stdout with the call site's function while threads keep the rest, under a
    watchdog that kills the program at `timeout`."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        process.kill()

    watchdog = threading.Timer(timeout, expire) if timeout is not None else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [_collect(process.stderr, err)]
    try:
        if callable(output):
            assert process.stdout is not None
            with process.stdout:
                output(process.stdout)
                # What the reader left (a tar's end padding): unread, it would block the program.
                while process.stdout.read(1 << 16):
                    pass
        elif callable(input):
            readers.append(_collect(process.stdout, out))
            assert process.stdin is not None
            try:
                with process.stdin:
                    input(process.stdin)
            except BrokenPipeError:
                pass  # the program stopped reading: its exit code and stderr say why
        process.wait()
    except BaseException:
        if not fired.is_set():
            raise
        process.wait()  # the kill broke the stream the call site was reading or writing
    finally:
        if watchdog is not None:
            watchdog.cancel()
    for reader in readers:
        if reader is not None:
            reader.join(DRAIN_AFTER_KILL_S if fired.is_set() else None)
    return b"".join(out), b"".join(err), fired.is_set()


def start(
    command: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    log: Path,
    hint: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session that outlives this run (dockerd), its output appended to
    `log`; whether it came up is the caller's question."""
    argv = [os.fspath(part) for part in command]
    if settings().echo:
        _echo(argv, None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as stream:
        try:
            return subprocess.Popen(
                argv, stdout=stream, stderr=stream, stdin=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as cannot:
            raise HpsforgeError(
                _failure(what, _start_trouble(program_name(argv), argv[0], None, cannot), [], console=False), hint=hint
            ) from None
