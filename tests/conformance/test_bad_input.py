"""Check 3: bad input gets a specific error (a 422 envelope where the request reached the pipeline,
a Triton 4xx otherwise), never a 5xx, a crash or a hang; a valid request right after still succeeds."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
import pytest
import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings

NOT_AN_IMAGE = base64.b64encode(b"these bytes are not an image").decode()
TOO_BIG = 17 * 1024 * 1024  # over the server's 16 MiB request limit (HPS_MAX_REQUEST_BYTES)
DEEP = "[" * 10_000 + "]" * 10_000


def _envelope_cases(target: goldens.ConformanceTarget, valid: dict) -> dict[str, tuple[object, str]]:
    """name -> (document sent as the `input` tensor, text the 422's errorMsg must contain)."""
    cases = {
        "not_json": ("this is not JSON", "not valid JSON"),
        "json_of_the_wrong_type": ("[1, 2, 3]", "must be a JSON object"),
        "missing_required_field": (
            {k: v for k, v in valid.items() if k != target.required_field},
            target.required_field,
        ),
        "field_of_the_wrong_type": ({**valid, target.required_field: 12345}, target.required_field),
        "nested_10000_levels": (DEEP, "nested too deeply"),
        "nested_10000_levels_in_a_field": (f'{{"{target.required_field}": {DEEP}}}', "nested too deeply"),
        "over_the_size_limit": ({**valid, target.required_field: "A" * TOO_BIG}, "over the limit"),
    }
    if target.image_field:
        cases["invalid_base64"] = ({**valid, target.image_field: "%%% not base64 %%%"}, "base64")
        cases["bytes_that_are_not_an_image"] = ({**valid, target.image_field: NOT_AN_IMAGE}, "not a decodable image")
    return cases


def _png(width: int, height: int, rows: bytes = b"\0" * 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _jpeg_header(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    return b"\xff\xd8" + app0 + b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\0" * 3


GREY_PNG = _png(64, 48, b"".join(b"\0" + b"\x80" * 64 * 3 for _ in range(48)))
LIMIT = 64 * 1024 * 1024  # hps_server.images.MAX_PIXELS
# name -> (image bytes, what the 422's errorMsg must say). Every decoder path: sizes judged from
# the header (PNG, JPEG, GIF, BMP), OpenCV's own pixel cap (PNM: its header is OpenCV's to read),
# OpenCV errors (OpenEXR, a codec it has but keeps off), damaged and empty images, other formats.
BAD_IMAGES = {
    "png_declaring_100000x100000": (_png(100000, 100000), f"declares 100000x100000 pixels, over the limit of {LIMIT}"),
    "jpeg_declaring_65000x65000": (
        _jpeg_header(65000, 65000),
        f"declares 65000x65000 pixels, over the limit of {LIMIT}",
    ),
    "gif_declaring_60000x60000": (
        b"GIF89a" + struct.pack("<HH", 60000, 60000) + b"\0" * 20,
        f"declares 60000x60000 pixels, over the limit of {LIMIT}",
    ),
    "bmp_declaring_30000x30000": (
        b"BM"
        + struct.pack("<IHHI", 0, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 0, 0, 0, 0),
        f"declares 30000x30000 pixels, over the limit of {LIMIT}",
    ),
    "pnm_declaring_100000x100000": (b"P6\n100000 100000\n255\n" + b"\0" * 64, f"more than the limit of {LIMIT} pixels"),
    "openexr": (b"\x76\x2f\x31\x01" + b"\0" * 100, "not a decodable image"),
    "truncated_png": (GREY_PNG[: len(GREY_PNG) // 2], "not a decodable image"),
    "png_of_0x0_pixels": (_png(0, 0), "not a decodable image"),
    "jpeg_header_without_data": (_jpeg_header(64, 64), "not a decodable image"),
    "pdf": (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not a decodable image"),
    "svg": (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", "not a decodable image"),
}


def _still_serving(server, pipeline: str, golden: goldens.GoldenFile, valid: dict) -> None:
    status, envelope = wire.infer(server.http, golden.conformance.model, valid)
    assert status == 200 and not goldens.problems(golden.valid_case, envelope), (
        f"the valid request after a bad one failed: {status} {str(envelope)[:300]}"
    )


@pytest.fixture
def golden(pipeline):
    return goldens.load_file(settings().pipelines_dir / pipeline)


@pytest.fixture
def valid(pipeline, golden, fixtures_dir):
    return goldens.resolve(golden.valid_case.request, settings().pipelines_dir / pipeline / "goldens", fixtures_dir, {})


def test_bad_documents_get_a_422_envelope(pipeline, server, golden, valid):
    failures = []
    for name, (document, expected) in _envelope_cases(golden.conformance, valid).items():
        status, envelope = wire.infer(server.http, golden.conformance.model, document)
        if status != 200 or envelope.get("errorCode") != 422 or expected not in envelope.get("errorMsg", ""):
            failures.append(f"{name}: HTTP {status}, {str(envelope)[:200]} (expected a 422 saying {expected!r})")
        _still_serving(server, pipeline, golden, valid)
    assert not failures, "\n".join(failures)


def test_images_that_cannot_be_decoded_get_a_422_saying_why(pipeline, server, golden, valid):
    field = golden.conformance.image_field
    if field is None:
        pytest.skip(f"{pipeline}'s endpoint takes no image")
    failures = []
    for name, (data, expected) in BAD_IMAGES.items():
        document = {**valid, field: base64.b64encode(data).decode()}
        status, envelope = wire.infer(server.http, golden.conformance.model, document)
        message = envelope.get("errorMsg", "")
        if status != 200 or envelope.get("errorCode") != 422 or expected not in message or field not in message:
            failures.append(
                f"{name}: HTTP {status}, {str(envelope)[:300]} (expected a 422 naming {field!r} "
                f"and saying {expected!r})"
            )
        _still_serving(server, pipeline, golden, valid)
    assert not failures, "\n".join(failures)


def test_invalid_utf8_gets_a_422_envelope(pipeline, server, golden, valid):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.http, network_timeout=120)
    try:
        tensor = triton.InferInput("input", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b'{"a": "\xff\xfe"}']], dtype=np.object_), binary_data=True)
        answer = client.infer(golden.conformance.model, [tensor])
        envelope = json.loads(answer.as_numpy("output").reshape(-1)[0])
    finally:
        client.close()
    assert envelope["errorCode"] == 422 and "UTF-8" in envelope["errorMsg"], envelope
    _still_serving(server, pipeline, golden, valid)


def test_bad_tensors_and_unknown_models_get_a_triton_4xx(pipeline, server, golden, valid):
    model = golden.conformance.model
    text = json.dumps(valid)
    cases = {
        "wrong_tensor_name": (f"/v2/models/{model}/infer", wire.infer_body([text], name="image"), "input"),
        "wrong_dtype": (f"/v2/models/{model}/infer", wire.infer_body([1], datatype="INT32"), "data-type"),
        "wrong_shape": (f"/v2/models/{model}/infer", wire.infer_body([text, text], shape=[1, 2]), "shape"),
        "unknown_model": ("/v2/models/no-such-model/infer", wire.infer_body([text]), "no-such-model"),
    }
    failures = []
    for name, (path, body, expected) in cases.items():
        status, reply = wire.call(server.http, "POST", path, body)
        if not 400 <= status < 500 or expected.encode() not in reply:
            failures.append(f"{name}: HTTP {status} {reply[:200]!r} (expected a 4xx mentioning {expected!r})")
        _still_serving(server, pipeline, golden, valid)
    assert not failures, "\n".join(failures)


def test_malformed_http_bodies_get_an_error_and_the_server_keeps_serving(pipeline, server, golden, valid):
    """A KServe body Triton itself cannot parse. Triton 2.51's HTTP frontend answers these with a
    500 (its own parser's status, before any model runs); what must hold is an error that says
    what is wrong, no crash and no hang."""
    path = f"/v2/models/{golden.conformance.model}/infer"
    for name, body, expected in (
        ("not_json", b"{not json", b"parse"),
        ("nested_10000_levels", DEEP.encode(), b"inputs"),
        ("no_inputs", b"{}", b"inputs"),
    ):
        status, reply = wire.call(server.http, "POST", path, body)
        assert status >= 400 and expected in reply, f"{name}: HTTP {status} {reply[:200]!r}"
        _still_serving(server, pipeline, golden, valid)
