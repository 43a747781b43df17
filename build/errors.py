"""The one exception type users see: what failed, and the command that fixes it."""


class HpsforgeError(Exception):
    """A failure the user can act on. Sessions print it without a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  -> {hint}")
