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

from hps_server import trace
from hps_server.context import ServerContext
from hps_server.errors import RequestError

URL_TIMEOUT_S = 10
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_PIXELS = 64 * 1024 * 1024
UNSUPPORTED = "PNG, JPEG, BMP, TIFF or WebP expected, whole and undamaged"
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


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a PNG, JPEG, GIF, BMP or WebP header declares, read before any decoding;
    None for other formats (OpenCV's own pixel cap still applies to them)."""
    be16 = lambda at: int.from_bytes(data[at:at + 2], "big")  # noqa: E731
    le16 = lambda at: int.from_bytes(data[at:at + 2], "little")  # noqa: E731
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return le16(6), le16(8)
    if data[:2] == b"BM" and len(data) >= 26:
        return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(int.from_bytes(data[22:26], "little", signed=True))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return le16(26) & 0x3FFF, le16(28) & 0x3FFF
    if data[:2] == b"\xff\xd8":
        at = 2
        while at + 9 <= len(data) and data[at] == 0xFF:
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                at += 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
                return be16(at + 7), be16(at + 5)
            at += 2 + be16(at + 2)
    return None


def decode_image(value: str, context: ServerContext, field: str = "image") -> np.ndarray:
    """An HxWx3 uint8 BGR array from a base64 image or an allowed URL.

    Every way an image can be unusable is the client's: a 422 that names the field, and the
    limit when the image is too large (judged from its header, before any pixel is decoded).
    """
    import cv2

    with trace.stage("decode"):
        data = decode_bytes(value, context, field)
        size = declared_size(data)
        if size is not None and size[0] * size[1] > MAX_PIXELS:
            raise RequestError(f"{field}: the image declares {size[0]}x{size[1]} pixels, over the limit of "
                               f"{MAX_PIXELS} pixels")
        try:
            array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        except cv2.error as error:
            if "CV_IO_MAX_IMAGE_PIXELS" in str(error):
                raise RequestError(f"{field}: the image declares more than the limit of {MAX_PIXELS} pixels") from None
            # OpenCV raises for some formats it recognises but cannot decode (e.g. OpenEXR, off here).
            raise RequestError(f"{field}: not a decodable image ({UNSUPPORTED})") from None
    if array is None or array.size == 0:
        raise RequestError(f"{field}: not a decodable image ({UNSUPPORTED}, at most {MAX_PIXELS} pixels)")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise RequestError(f"{field}: {array.shape[1]}x{array.shape[0]} pixels is over the limit of {MAX_PIXELS}")
    return array


def encode_jpeg(array: np.ndarray, quality: int = 90) -> str:
    import cv2

    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return base64.b64encode(encoded.tobytes()).decode("ascii")
