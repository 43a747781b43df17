"""The errors users see: what failed, the command that fixes it, and an exit code CI can tell apart.

| exit | error | meaning |
|---|---|---|
| 1 | HpsforgeError | any other failure (a build step, a test, the engine) |
| 2 | UsageError | bad arguments or a malformed declaration: fix the command or the file |
| 3 | StaleLockError | a lock is missing, stale against its declaration, or unhashed: re-lock |
| 4 | InputUnavailableError | a locked input cannot be had (gone upstream, unreachable, not supplied) |
| 5 | HashMismatchError | a file does not match its lock: tampering or corruption |
| 6 | DigestMismatchError | a rebuilt image's digest differs from the recorded one |
| 7 | NewInputsError | images whose inputs have no recorded digest yet (repro has nothing to compare) |
"""


class HpsforgeError(Exception):
    """A failure the user can act on. Sessions print it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  -> {hint}")


class UsageError(HpsforgeError):
    exit_code = 2


class StaleLockError(HpsforgeError):
    exit_code = 3


class InputUnavailableError(HpsforgeError):
    exit_code = 4


class HashMismatchError(HpsforgeError):
    exit_code = 5


class DigestMismatchError(HpsforgeError):
    exit_code = 6


class NewInputsError(HpsforgeError):
    exit_code = 7


EXIT_CODES = {cls.exit_code: cls for cls in (HpsforgeError, UsageError, StaleLockError, InputUnavailableError,
                                              HashMismatchError, DigestMismatchError, NewInputsError)}
