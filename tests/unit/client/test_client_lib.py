"""hps_client without a real Triton: envelopes, errors, retries, log ids, base64 inputs.

Transport tests use real sockets: a bound but non-listening port (connection refused) and a
small threaded http.server speaking the part of Triton's HTTP/REST protocol the client uses.
"""

import base64
import contextlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import hps_client
import pytest
from hps_client import (
    ClassificationResult,
    Client,
    FaceResult,
    IndexResult,
    LexicalAnalysisResult,
    OcrResult,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    TritonError,
    UnavailableError,
    parse_envelope,
    to_base64,
)
from hps_client.cli import main as cli_main


def envelope(result, log_id="srv-log"):
    return {"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result}


# --- envelope parsing ------------------------------------------------------------------------


def test_parse_success_envelope():
    env = parse_envelope(json.dumps(envelope({"a": 1}, "L1")).encode())
    assert (env.log_id, env.error_code, env.error_msg, env.result) == ("L1", 0, "Success", {"a": 1})


def test_parse_accepts_str_and_extra_fields():
    env = parse_envelope(json.dumps({**envelope({}), "elapsedMs": 3}))
    assert env.result == {} and env.model_extra == {"elapsedMs": 3}


def test_parse_fills_missing_log_id_from_client():
    env = parse_envelope(b'{"errorCode":0,"errorMsg":"Success","result":{}}', log_id="client-id")
    assert env.log_id == "client-id"


@pytest.mark.parametrize("code", [422, 500])
def test_error_envelope_raises_server_error(code):
    raw = json.dumps({"logId": "L2", "errorCode": code, "errorMsg": "bad image"})
    with pytest.raises(ServerError) as info:
        parse_envelope(raw, log_id="ignored")
    err = info.value
    assert (err.error_code, err.message, err.log_id) == (code, "bad image", "L2")
    assert not isinstance(err, TritonError)
    assert "bad image" in str(err)


def test_error_envelope_without_log_id_uses_client_one():
    with pytest.raises(ServerError) as info:
        parse_envelope('{"errorCode":422,"errorMsg":"x"}', log_id="mine")
    assert info.value.log_id == "mine"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"logId":"x","errorMsg":"Success","result":{}}',
        b'{"errorCode":"0","result":{}}',
        b'{"errorCode":true,"result":{}}',
        b'{"errorCode":0,"errorMsg":"Success"}',
        b'{"errorCode":0,"errorMsg":"Success","result":[1]}',
    ],
)
def test_malformed_envelope_raises_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_envelope(raw)


# --- typed results ---------------------------------------------------------------------------

OCR_RESULT = {
    "ocrResults": [
        {
            "prunedResult": {
                "rec_texts": ["Hello", "World"],
                "rec_scores": [0.99, 0.97],
                "rec_polys": [[[1, 2], [30, 2], [30, 12], [1, 12]], [[1, 20], [30, 20], [30, 32], [1, 32]]],
                "rec_boxes": [[1, 2, 30, 12], [1, 20, 30, 32]],
                "text_det_params": {"thresh": 0.3},
            },
            "ocrImage": None,
        }
    ],
    "dataInfo": {"width": 64, "height": 40, "type": "image"},
}
FACE_RESULT = {
    "faces": [{"bbox": [10.5, 20, 110, 140], "recResults": [{"label": "obama", "score": 0.93}], "score": 1.0}],
    "image": None,
}


def test_ocr_result_model_keeps_extras_and_ints():
    res = OcrResult.model_validate(OCR_RESULT)
    assert res.texts == ["Hello", "World"]
    assert res.data_info.width == 64
    assert res.ocr_results[0].pruned_result.rec_boxes[0] == [1, 2, 30, 12]
    dumped = res.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == OCR_RESULT  # ints stay ints, extra text_det_params survives


def test_face_and_index_results():
    res = FaceResult.model_validate(FACE_RESULT)
    assert res.faces[0].rec_results[0].label == "obama"
    assert IndexResult.model_validate({"indexKey": "k1", "imageCount": 3}).index_key == "k1"
    assert IndexResult.model_validate({"imageCount": 2}).index_key is None


# --- base64 handling -------------------------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PNG_B64 = base64.b64encode(PNG_BYTES).decode()


def test_base64_from_path_str_and_pathlike(tmp_path):
    image = tmp_path / "img.png"
    image.write_bytes(PNG_BYTES)
    assert to_base64(str(image)) == PNG_B64
    assert to_base64(image) == PNG_B64


def test_base64_from_bytes():
    assert to_base64(PNG_BYTES) == PNG_B64
    assert to_base64(bytearray(PNG_BYTES)) == PNG_B64
    assert to_base64(memoryview(PNG_BYTES)) == PNG_B64


def test_base64_str_passes_through_and_is_compacted():
    assert to_base64(PNG_B64) == PNG_B64
    wrapped = "\n".join(PNG_B64[i : i + 20] for i in range(0, len(PNG_B64), 20))
    assert to_base64(wrapped) == PNG_B64


def test_base64_url_passes_through():
    assert to_base64("https://example.com/a.jpg") == "https://example.com/a.jpg"


def test_base64_rejects_missing_files_and_other_types(tmp_path):
    with pytest.raises(ValueError, match="not an existing file"):
        to_base64(str(tmp_path / "missing.jpg"))
    with pytest.raises(FileNotFoundError):
        to_base64(tmp_path / "missing.jpg")
    with pytest.raises(ValueError):
        to_base64("")
    with pytest.raises(TypeError):
        to_base64(12)


# --- a fake Triton over real sockets ---------------------------------------------------------


def _decode_request(headers, body):
    """The input document and the Triton request id of a KServe v2 infer request."""
    header_len = headers.get("Inference-Header-Content-Length")
    if header_len is None:
        request = json.loads(body)
        value = request["inputs"][0]["data"][0]
        return json.loads(value), request.get("id")
    request = json.loads(body[: int(header_len)])
    tensor = request["inputs"][0]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input", "BYTES", [1, 1])
    blob = body[int(header_len) :]
    (length,) = struct.unpack("<I", blob[:4])
    assert len(blob) == 4 + length  # exactly one element
    return json.loads(blob[4:].decode("utf-8")), request.get("id")


def _infer_response(model, request_id, output, binary):
    """A Triton infer response whose BYTES output `output` holds one string."""
    out = {"name": "output", "datatype": "BYTES", "shape": [1, 1]}
    head = {"model_name": model, "model_version": "1", "outputs": [out]}
    if request_id:
        head["id"] = request_id
    if not binary:
        out["data"] = [output]
        return json.dumps(head).encode(), {"Content-Type": "application/json"}
    raw = output.encode("utf-8")
    blob = struct.pack("<I", len(raw)) + raw
    out["parameters"] = {"binary_data_size": len(blob)}
    header = json.dumps(head).encode()
    return header + blob, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


class FakeTriton:
    """Answers /v2/health/ready and /v2/models/<m>/infer; `script` is consumed first, then
    `responder(model, doc)` answers. A reply is ("http", status, body), ("envelope", dict),
    ("raw", output_string), ("sleep", seconds, reply), ("reset",) or ("no-output",)."""

    def __init__(self):
        self.script = []
        self.responder = lambda model, doc: ("envelope", envelope({"echo": doc}, doc.get("logId")))
        self.binary = False
        self.ready = True
        self.requests = []  # (model, input document, triton request id)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=()):
                self.send_response(status)
                for key, value in dict(headers).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v2/health/ready":
                    self._send(200 if fake.ready else 503, b"")
                elif self.path.startswith("/v2/models/") and self.path.endswith("/ready"):
                    self._send(200 if fake.ready else 400, b"")
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                parts = self.path.split("/")
                if len(parts) != 5 or parts[1:3] != ["v2", "models"] or parts[4] != "infer":
                    self._send(404, b'{"error":"not found"}')
                    return
                model = parts[3]
                doc, request_id = _decode_request(self.headers, body)
                fake.requests.append((model, doc, request_id))
                reply = fake.script.pop(0) if fake.script else fake.responder(model, doc)
                self._reply(model, request_id, reply)

            def _reply(self, model, request_id, reply):
                kind = reply[0]
                if kind == "sleep":
                    time.sleep(reply[1])
                    with contextlib.suppress(OSError):  # the client gave up
                        self._reply(model, request_id, reply[2])
                elif kind == "http":
                    self._send(reply[1], reply[2])
                elif kind == "reset":  # RST instead of an answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                elif kind == "no-output":
                    self._send(200, json.dumps({"model_name": model, "outputs": []}).encode())
                else:
                    text = reply[1] if kind == "raw" else json.dumps(reply[1], separators=(",", ":"))
                    self._send(200, *_infer_response(model, request_id, text, fake.binary))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def triton():
    fake = FakeTriton()
    yield fake
    fake.close()


@pytest.fixture
def refused_url():
    """A port that is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def fast_client(url, **kwargs):
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return Client(url, **kwargs)


# --- retries ---------------------------------------------------------------------------------


def test_retries_503_and_502_then_succeeds(triton):
    triton.script = [
        ("http", 503, b'{"error":"Server not ready"}'),
        ("http", 502, b"<html>Bad Gateway</html>"),
    ]
    with fast_client(triton.url, retries=3) as client:
        env = client.infer("ocr", {"file": "AAAA"})
    assert env.result["echo"]["file"] == "AAAA"
    assert len(triton.requests) == 3
    log_ids = {doc["logId"] for _, doc, _ in triton.requests}
    assert len(log_ids) == 1  # every attempt carries the same log id


def test_connection_reset_is_retried(triton):
    triton.script = [("reset",), ("reset",)]
    with fast_client(triton.url, retries=2) as client:
        env = client.infer("ocr", {"file": "AAAA"})
    assert env.result["echo"]["file"] == "AAAA"
    assert len(triton.requests) == 3


def test_binary_output_is_decoded(triton):
    triton.binary = True
    with fast_client(triton.url) as client:
        env = client.infer("lexical-analysis", {"texts": ["百度是一家公司"]})
    assert env.result["echo"]["texts"] == ["百度是一家公司"]


def test_gives_up_after_retries_on_503(triton):
    triton.responder = lambda model, doc: ("http", 503, b'{"error":"unavailable"}')
    with fast_client(triton.url, retries=2) as client, pytest.raises(UnavailableError) as info:
        client.infer("ocr", {})
    assert info.value.attempts == 3
    assert len(triton.requests) == 3


def test_connection_refused_is_retried_then_unavailable(refused_url):
    client = fast_client(refused_url, retries=2)
    with pytest.raises(UnavailableError) as info:
        client.infer("ocr", {})
    client.close()
    assert info.value.attempts == 3
    assert not isinstance(info.value, RequestTimeoutError)


def test_grpc_unavailable_is_retried(refused_url):
    with fast_client(refused_url, protocol="grpc", retries=1) as client, pytest.raises(UnavailableError) as info:
        client.infer("ocr", {})
    assert info.value.attempts == 2


def test_backoff_grows(refused_url):
    client = Client(refused_url, retries=2, backoff=0.1)
    start = time.monotonic()
    with pytest.raises(UnavailableError):
        client.infer("ocr", {})
    client.close()
    assert time.monotonic() - start >= 0.3  # 0.1 + 0.2


@pytest.mark.parametrize("status", [400, 404, 429, 500])
def test_triton_http_errors_are_not_retried(triton, status):
    triton.responder = lambda model, doc: ("http", status, b'{"error":"Request for unknown model"}')
    with fast_client(triton.url, retries=3) as client, pytest.raises(TritonError) as info:
        client.infer("nope", {}, log_id="abc")
    assert (info.value.error_code, info.value.log_id) == (status, "abc")
    assert "unknown model" in info.value.message
    assert len(triton.requests) == 1


@pytest.mark.parametrize("code", [422, 500])
def test_error_envelopes_are_not_retried(triton, code):
    triton.responder = lambda model, doc: (
        "envelope",
        {"logId": doc["logId"], "errorCode": code, "errorMsg": "image is not decodable"},
    )
    with fast_client(triton.url, retries=3) as client, pytest.raises(ServerError) as info:
        client.infer("ocr", {"file": "AAAA"}, log_id="req-7")
    assert (info.value.error_code, info.value.message, info.value.log_id) == (
        code,
        "image is not decodable",
        "req-7",
    )
    assert len(triton.requests) == 1


def test_timeout_is_not_retried(triton):
    triton.responder = lambda model, doc: ("sleep", 1.5, ("envelope", envelope({})))
    with fast_client(triton.url, timeout=0.3, retries=3) as client:
        start = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            client.infer("ocr", {})
    assert time.monotonic() - start < 1.2
    assert len(triton.requests) == 1


@pytest.mark.parametrize("reply", [("raw", "not json"), ("raw", '{"errorCode":0}'), ("no-output",)])
def test_malformed_answers_raise_protocol_error(triton, reply):
    triton.responder = lambda model, doc: reply
    with fast_client(triton.url) as client, pytest.raises(ProtocolError):
        client.infer("ocr", {})
    assert len(triton.requests) == 1


# --- log ids ---------------------------------------------------------------------------------


def test_log_id_generated_when_absent(triton):
    payload = {"texts": ["a"]}
    with fast_client(triton.url) as client:
        env = client.infer("lexical-analysis", payload)
    _, doc, request_id = triton.requests[0]
    assert len(doc["logId"]) == 32 and int(doc["logId"], 16) >= 0  # uuid4 hex
    assert env.log_id == doc["logId"] == request_id
    assert "logId" not in payload  # the caller's dict is not modified


def test_log_id_in_payload_is_kept(triton):
    with fast_client(triton.url) as client:
        env = client.infer("lexical-analysis", {"texts": ["a"], "logId": "from-payload"})
    assert triton.requests[0][1]["logId"] == "from-payload" == env.log_id


def test_log_id_argument_wins(triton):
    with fast_client(triton.url) as client:
        client.infer("lexical-analysis", {"texts": ["a"], "logId": "from-payload"}, log_id="explicit")
    assert triton.requests[0][1]["logId"] == "explicit"


def test_request_is_compact_utf8_json(triton):
    with fast_client(triton.url) as client:
        client.infer("lexical-analysis", {"texts": ["中文"]}, log_id="x")
    assert triton.requests[0][1] == {"texts": ["中文"], "logId": "x"}


# --- health ----------------------------------------------------------------------------------


def test_is_ready_and_wait_ready(triton, refused_url):
    with fast_client(triton.url) as client:
        assert client.is_ready()
        assert client.is_ready("ocr")
        client.wait_ready(timeout=1.0)
        triton.ready = False
        assert not client.is_ready()
        with pytest.raises(UnavailableError):
            client.wait_ready(timeout=0.3, interval=0.1)
    with fast_client(refused_url) as client:
        assert not client.is_ready()


# --- typed helpers ---------------------------------------------------------------------------


def test_ocr_helper(triton, tmp_path):
    image = tmp_path / "page.png"
    image.write_bytes(PNG_BYTES)
    triton.responder = lambda model, doc: ("envelope", envelope(OCR_RESULT, doc["logId"]))
    with fast_client(triton.url) as client:
        res = client.ocr(image, text_det_thresh=0.3, textRecScoreThresh=0.5, visualize=None)
    model, doc, _ = triton.requests[0]
    assert model == "ocr"
    assert doc["file"] == PNG_B64 and doc["fileType"] == 1
    assert doc["textDetThresh"] == 0.3 and doc["textRecScoreThresh"] == 0.5
    assert "visualize" not in doc  # None means: leave it to the server
    assert isinstance(res, OcrResult) and res.texts == ["Hello", "World"]


def test_classify_helper(triton):
    triton.responder = lambda model, doc: (
        "envelope",
        envelope({"categories": [{"id": 0, "name": "0", "score": 0.98}, {"id": 1, "name": "180", "score": 0.02}]}),
    )
    with fast_client(triton.url) as client:
        res = client.classify(PNG_BYTES, topk=2)
        client.classify(PNG_B64)
    assert triton.requests[0][0] == "image-classification"
    assert triton.requests[0][1]["topk"] == 2 and triton.requests[0][1]["image"] == PNG_B64
    assert "topk" not in triton.requests[1][1]
    assert isinstance(res, ClassificationResult) and res.categories[0].name == "0"


def test_lexical_analysis_helper(triton):
    result = {
        "results": [{"text": "百度是一家公司", "words": ["百度", "是", "一家", "公司"], "tags": ["ORG", "v", "m", "n"]}]
    }
    triton.responder = lambda model, doc: ("envelope", envelope(result))
    with fast_client(triton.url) as client:
        res = client.lexical_analysis(["百度是一家公司"])
        client.lexical_analysis("单句")
    assert triton.requests[0][:2] == (
        "lexical-analysis",
        {"texts": ["百度是一家公司"], "logId": triton.requests[0][1]["logId"]},
    )
    assert triton.requests[1][1]["texts"] == ["单句"]
    assert isinstance(res, LexicalAnalysisResult) and res.results[0].tags[0] == "ORG"


def test_face_helpers(triton, tmp_path):
    face = tmp_path / "obama.jpg"
    face.write_bytes(PNG_BYTES)
    answers = {
        "face-recognition-index-build": {"indexKey": "idx1", "imageCount": 2},
        "face-recognition-index-add": {"imageCount": 3},
        "face-recognition-index-remove": {"imageCount": 2},
        "face-recognition-infer": FACE_RESULT,
    }
    triton.responder = lambda model, doc: ("envelope", envelope(answers[model]))
    with fast_client(triton.url) as client:
        built = client.build_index([(face, "obama"), {"image": PNG_BYTES, "label": "biden"}])
        added = client.add_to_index([(str(face), "obama")], built.index_key)
        removed = client.remove_from_index([1], built.index_key)
        found = client.recognize(face, built.index_key, rec_threshold=0.4)
    docs = {model: doc for model, doc, _ in triton.requests}
    assert docs["face-recognition-index-build"]["imageLabelPairs"] == [
        {"image": PNG_B64, "label": "obama"},
        {"image": PNG_B64, "label": "biden"},
    ]
    assert docs["face-recognition-index-add"]["indexKey"] == "idx1"
    assert docs["face-recognition-index-remove"]["ids"] == [1]
    assert docs["face-recognition-infer"]["recThreshold"] == 0.4
    assert docs["face-recognition-infer"]["indexKey"] == "idx1"
    assert (built.index_key, built.image_count, added.image_count, removed.image_count) == ("idx1", 2, 3, 2)
    assert isinstance(found, FaceResult) and found.faces[0].rec_results[0].label == "obama"


def test_unexpected_result_shape_is_protocol_error(triton):
    triton.responder = lambda model, doc: ("envelope", envelope({"categories": "oops"}))
    with fast_client(triton.url) as client, pytest.raises(ProtocolError):
        client.classify(PNG_BYTES)


# --- CLI -------------------------------------------------------------------------------------


def test_cli_prints_result(triton, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(PNG_BYTES)
    triton.responder = lambda model, doc: ("envelope", envelope({"categories": [{"id": 0, "name": "0", "score": 0.9}]}))
    assert cli_main(["--url", triton.url, "classify", str(image), "--topk", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"categories": [{"id": 0, "name": "0", "score": 0.9}]}
    assert triton.requests[0][1]["topk"] == 2


def test_cli_face_index_build_and_lexical(triton, tmp_path, capsys):
    image = tmp_path / "a=b.png"  # the last "=" separates the label
    image.write_bytes(PNG_BYTES)
    triton.responder = lambda model, doc: (
        "envelope",
        envelope({"indexKey": "k", "imageCount": 1} if model.startswith("face") else {"results": []}),
    )
    assert cli_main(["--url", triton.url, "face-index-build", f"{image}=obama"]) == 0
    assert json.loads(capsys.readouterr().out) == {"indexKey": "k", "imageCount": 1}
    assert triton.requests[0][1]["imageLabelPairs"] == [{"image": PNG_B64, "label": "obama"}]
    assert cli_main(["--url", triton.url, "--log-id", "cli-1", "lexical-analysis", "你好", "世界"]) == 0
    assert triton.requests[1][1] == {"texts": ["你好", "世界"], "logId": "cli-1"}


def test_cli_error_envelope_exits_1(triton, capsys):
    triton.responder = lambda model, doc: (
        "envelope",
        {"logId": doc["logId"], "errorCode": 422, "errorMsg": "texts: field required"},
    )
    assert cli_main(["--url", triton.url, "lexical-analysis", "x"]) == 1
    assert "texts: field required" in capsys.readouterr().err


def test_cli_unavailable_exits_2(refused_url, capsys):
    assert cli_main(["--url", refused_url, "--retries", "0", "lexical-analysis", "x"]) == 2
    assert "unavailable" in capsys.readouterr().err


def test_cli_missing_image_exits_1(triton, capsys):
    assert cli_main(["--url", triton.url, "ocr", "/nonexistent/x.jpg"]) == 1
    assert "not an existing file" in capsys.readouterr().err
    assert triton.requests == []


def test_public_api():
    assert hps_client.__version__ == "0.1.0"
    for name in hps_client.__all__:
        assert hasattr(hps_client, name)
    assert Path(hps_client.__file__).parent.joinpath("py.typed").exists()
