"""Turning a user's image/file argument into the base64 string the wire expects."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Union

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def to_base64(value: ImageInput) -> str:
    """A path is read, bytes are encoded, a str that is no file must already be base64.

    http(s) URLs are passed through unchanged (the server decides whether it may fetch them).
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, os.PathLike):
        return base64.b64encode(Path(value).read_bytes()).decode("ascii")
    if not isinstance(value, str):
        raise TypeError(f"expected a path, bytes or a base64 str, got {type(value).__name__}")
    if value.startswith(("http://", "https://")):
        return value
    # A short string can be both a file name and valid base64: an existing file wins.
    if len(value) < 4096 and os.path.isfile(value):
        return base64.b64encode(Path(value).read_bytes()).decode("ascii")
    compact = "".join(value.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not an existing file and not base64: {value[:80]!r}") from None
    if not compact:
        raise ValueError("empty image/file argument")
    return compact
