"""Waiting until a server is ready: the one implementation `Client.wait_ready`, `nox -s serve`,
the serving benchmark and the conformance suite all use.

    seconds = wait_until(lambda: http_ready("127.0.0.1:8000"), timeout=300,
                         alive=lambda: container_is_running())

`wait_until` polls `probe` until it answers True and returns the seconds it took; it raises
NotReadyError when `alive` says the server is gone (reason "exited") or the time is up
(reason "timeout").
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Callable, Optional

from .errors import UnavailableError

READY_PATH = "/v2/health/ready"


class NotReadyError(UnavailableError):
    """The server did not get ready: `reason` is "exited" or "timeout"."""

    def __init__(self, message: str, reason: str, seconds: float, attempts: int):
        super().__init__(message, attempts)
        self.reason = reason
        self.seconds = seconds


def http_ready(address: str, path: str = READY_PATH, timeout: float = 2.0) -> bool:
    """True when GET http://<address><path> answers 200 (Triton: every model loaded); False when
    it answers anything else or cannot be reached. `address` is host:port (http:// allowed)."""
    if not address.startswith(("http://", "https://")):
        address = f"http://{address}"
    try:
        with urllib.request.urlopen(f"{address.rstrip('/')}{path}", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(
    probe: Callable[[], bool],
    timeout: float,
    interval: float = 0.25,
    alive: Optional[Callable[[], bool]] = None,
    what: str = "the server",
) -> float:
    """Seconds until `probe()` is True; NotReadyError when `alive()` turns False or after `timeout`."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        if probe():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if alive is not None and not alive():
            raise NotReadyError(f"{what} exited before it was ready", "exited", elapsed, attempts)
        if elapsed >= timeout:
            raise NotReadyError(f"{what} was not ready after {timeout:g} s", "timeout", elapsed, attempts)
        time.sleep(max(0.01, min(interval, timeout - elapsed)))
