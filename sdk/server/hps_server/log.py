"""Log lines through Triton's logger when running inside the python backend stub, else stderr."""

import sys


def _triton_logger():
    # Looked up per call: while Triton auto-completes a config the module has no Logger yet.
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # unit tests and tools outside the stub
        return None
    return getattr(pb_utils, "Logger", None)


def info(message: str) -> None:
    logger = _triton_logger()
    if logger is not None:
        logger.log_info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    logger = _triton_logger()
    if logger is not None:
        logger.log_error(message)
    else:
        print(message, file=sys.stderr, flush=True)
