"""Exceptions raised by the client; all derive from HpsClientError."""

from __future__ import annotations

from typing import Optional


class HpsClientError(Exception):
    """Base class of every error this package raises."""


class ServerError(HpsClientError):
    """The server answered with an error envelope (errorCode != 0)."""

    def __init__(self, error_code: int, message: str, log_id: Optional[str] = None):
        super().__init__(f"[{error_code}] {message}")
        self.error_code = error_code
        self.message = message
        self.log_id = log_id


class TritonError(ServerError):
    """Triton refused the request before the model answered (unknown model, bad tensor...).

    error_code is the HTTP status (gRPC status codes are mapped to their HTTP equivalent).
    """


class UnavailableError(HpsClientError):
    """The server could not be reached, after `attempts` tries."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class RequestTimeoutError(UnavailableError):
    """No answer within the client timeout (never retried: the request may have run)."""


class ProtocolError(HpsClientError):
    """The answer was not a well-formed envelope (not JSON, wrong shape, missing output)."""
