"""Log lines. Errors go through Triton's logger when running inside the python backend stub (so
they sit in Triton's log with its format); informational lines are written straight to stderr,
which the stub shares with tritonserver: Triton's logger is a round trip to the server process
(about 0.1 ms per line, measured), too dear for a line per request. Outside Triton, both go to stderr.
"""

import os
import sys
import time


def _triton_logger():
    # Looked up per call: while Triton auto-completes a config the module has no Logger yet.
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # unit tests and tools outside the stub
        return None
    return getattr(pb_utils, "Logger", None)


def info(message: str) -> None:
    # Triton's own line format (I<mmdd> <time> <pid> <source>] <message>), one write per line so
    # lines of several model processes never interleave.
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    sys.stderr.write(f"I{stamp} {os.getpid()} hps_server] {message}\n")
    sys.stderr.flush()


def error(message: str) -> None:
    logger = _triton_logger()
    if logger is not None:
        logger.log_error(message)
    else:
        print(message, file=sys.stderr, flush=True)
