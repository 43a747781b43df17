"""The one exception type users see: what failed, and the command that fixes it."""


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
