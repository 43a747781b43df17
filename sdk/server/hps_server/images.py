"""Image inputs: base64 (the default) or a URL whose origin is on the allow-list.

A server that fetches any URL it is given is a request-forgery hole, so URLs are refused unless
HPS_URL_ALLOWLIST names their origin; redirects are not followed.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
import urllib.error
import urllib.request

import numpy as np

from hps_server.context import ServerContext
from hps_server.errors import RequestError

URL_TIMEOUT_S = 10
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_PIXELS = 64 * 1024 * 1024
# OpenCV refuses larger images before allocating them (a 1 MB PNG can declare 32768x32768 pixels,
# 3 GB decoded); read when cv2 first decodes, so set it before that (server.sh also exports it).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _fetch(url: str, context: ServerContext, field: str) -> bytes:
    if not context.url_allowed(url):
        raise RequestError(f"{field}: URL inputs are not allowed from this origin "
                           "(send the file as base64, or add the origin to HPS_URL_ALLOWLIST)")
    opener = urllib.request.build_opener(_NoRedirect)
    deadline = time.monotonic() + URL_TIMEOUT_S  # for the whole body, not per read
    chunks, size = [], 0
    try:
        with opener.open(url, timeout=URL_TIMEOUT_S) as response:
            while size <= MAX_IMAGE_BYTES and (chunk := response.read(64 * 1024)):
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise RequestError(f"{field}: {url} did not arrive within {URL_TIMEOUT_S} s")
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RequestError(f"{field}: cannot fetch {url}: {error}") from None
    data = b"".join(chunks)
    if len(data) > MAX_IMAGE_BYTES:
        raise RequestError(f"{field}: {url} is larger than {MAX_IMAGE_BYTES} bytes")
    return data


def decode_bytes(value: str, context: ServerContext, field: str = "image") -> bytes:
    """The bytes a base64 string or an allowed URL stands for."""
    if value.startswith(("http://", "https://")):
        return _fetch(value, context, field)
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field}: not valid base64") from None
    if not data:
        raise RequestError(f"{field}: empty")
    return data


def decode_image(value: str, context: ServerContext, field: str = "image") -> np.ndarray:
    """An HxWx3 uint8 BGR array from a base64 image or an allowed URL."""
    import cv2

    data = decode_bytes(value, context, field)
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if array is None or array.size == 0:
        raise RequestError(f"{field}: not a decodable image (PNG, JPEG, BMP, TIFF or WebP expected, "
                           f"at most {MAX_PIXELS} pixels)")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise RequestError(f"{field}: {array.shape[1]}x{array.shape[0]} pixels is over the limit of {MAX_PIXELS}")
    return array


def encode_jpeg(array: np.ndarray, quality: int = 90) -> str:
    import cv2

    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return base64.b64encode(encoded.tobytes()).decode("ascii")
