"""hps_server (sdk/server): the wire format, JsonModel's per-request answers, ServerContext, image inputs.

Runs without Triton: the runtime imports triton_python_backend_utils only inside `execute` and the
logger, and falls back to stderr when it is missing.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pydantic
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "sdk" / "server"))

from hps_server import JsonModel, RequestError, ServerContext, images, wire  # noqa: E402
from hps_server.models import INTERNAL_ERROR  # noqa: E402


class Request(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    value: int


class LenientRequest(pydantic.BaseModel):
    value: int


def _json(raw: bytes) -> dict:
    return json.loads(raw.decode("utf-8"))


def _wire_error(raw: bytes, model: type[pydantic.BaseModel] = Request) -> wire.WireError:
    with pytest.raises(wire.WireError) as caught:
        wire.decode(raw, model)
    assert caught.value.code == 422
    return caught.value


def _is_generated(log_id: str) -> bool:
    return len(log_id) == 32 and all(char in "0123456789abcdef" for char in log_id)


# --- wire.decode / parse_json ----------------------------------------------------------------


def test_decode_valid_request_keeps_log_id():
    log_id, request = wire.decode(b'{"logId":"abc-1","value":7}', Request)
    assert log_id == "abc-1"
    assert isinstance(request, Request) and request.value == 7


def test_decode_generates_a_log_id_when_absent_or_null():
    for raw in (b'{"value":7}', b'{"logId":null,"value":7}'):
        log_id, request = wire.decode(raw, Request)
        assert _is_generated(log_id)
        assert request.value == 7
    first, _ = wire.decode(b'{"value":1}', Request)
    second, _ = wire.decode(b'{"value":1}', Request)
    assert first != second


def test_parse_json_removes_log_id_from_the_body():
    log_id, body = wire.parse_json(b'{"logId":"L","value":1,"nested":{"logId":"kept"}}')
    assert log_id == "L"
    assert body == {"value": 1, "nested": {"logId": "kept"}}


@pytest.mark.parametrize("log_id", [12, 1.5, True, ["a"], {"a": 1}, "", "x" * (wire.MAX_LOG_ID_CHARS + 1)])
def test_decode_rejects_an_invalid_log_id(log_id):
    raw = json.dumps({"logId": log_id, "value": 1}).encode()
    error = _wire_error(raw)
    assert "logId" in error.message
    assert _is_generated(error.log_id)  # the bad one is not echoed back


def test_decode_accepts_a_log_id_of_the_maximum_length():
    log_id = "x" * wire.MAX_LOG_ID_CHARS
    assert wire.decode(json.dumps({"logId": log_id, "value": 1}).encode(), Request)[0] == log_id


def test_decode_not_json():
    error = _wire_error(b"not json at all")
    assert error.message.startswith("request is not valid JSON")
    assert _is_generated(error.log_id)


def test_decode_empty_body():
    assert "not valid JSON" in _wire_error(b"").message


def test_decode_invalid_utf8_names_the_byte():
    error = _wire_error(b'{"value":1,"x":"\xff"}')
    assert "not valid UTF-8" in error.message
    assert "byte 16" in error.message


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b"[1, 2]", "list"),
        (b'"text"', "str"),
        (b"42", "int"),
        (b"4.5", "float"),
        (b"null", "NoneType"),
        (b"true", "bool"),
    ],
)
def test_decode_rejects_non_object_json(raw, kind):
    assert _wire_error(raw).message == f"request must be a JSON object, not {kind}"


def test_decode_missing_field_keeps_log_id_and_names_the_field():
    error = _wire_error(b'{"logId":"mine"}')
    assert error.log_id == "mine"
    assert error.message.startswith("invalid request: ")
    assert "value: Field required" in error.message


def test_decode_wrong_type_names_the_field_without_echoing_input():
    error = _wire_error(b'{"value":"secret-text"}')
    assert "value:" in error.message
    assert "secret-text" not in error.message


def test_decode_extra_field_is_rejected_by_a_strict_model():
    error = _wire_error(b'{"logId":"mine","value":1,"surplus":2}')
    assert error.log_id == "mine"
    assert "surplus: Extra inputs are not permitted" in error.message


def test_decode_extra_field_is_ignored_by_a_lenient_model():
    _, request = wire.decode(b'{"value":1,"surplus":2}', LenientRequest)
    assert request.value == 1


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_decode_deep_nesting_is_a_422_not_a_crash(opening, closing):
    depth = 10_000
    raw = ('{"value":1,"deep":' + opening * depth + "1" + closing * depth + "}").encode()
    error = _wire_error(raw, LenientRequest)
    assert error.message == "request JSON is nested too deeply"


def test_decode_over_the_size_limit(monkeypatch):
    monkeypatch.setattr(wire, "MAX_REQUEST_BYTES", 20)
    assert wire.decode(b'{"value":1}', Request)[1].value == 1
    raw = b'{"value":1,"pad":"xxxxxxxxxxxxxxxx"}'
    error = _wire_error(raw)
    assert error.message == f"request is {len(raw)} bytes, over the limit of 20"


def test_decode_at_exactly_the_size_limit(monkeypatch):
    raw = b'{"value":1}'
    monkeypatch.setattr(wire, "MAX_REQUEST_BYTES", len(raw))
    assert wire.decode(raw, Request)[1].value == 1


# --- wire.success / failure ------------------------------------------------------------------


def test_success_is_compact_utf8_json_with_unescaped_text():
    raw = wire.success("L1", {"texts": ["百度", "é"], "n": 1})
    assert raw == '{"logId":"L1","errorCode":0,"errorMsg":"Success","result":{"texts":["百度","é"],"n":1}}'.encode()
    assert "百度".encode() in raw and b"\\u" not in raw


def test_failure_is_compact_utf8_json():
    raw = wire.failure("L2", 422, "image: 不是 base64")
    assert raw == '{"logId":"L2","errorCode":422,"errorMsg":"image: 不是 base64"}'.encode()


def test_success_serialises_numpy_scalars_and_arrays():
    result = {
        "score": np.float32(0.5),
        "label": np.int64(3),
        "flag": np.bool_(True),
        "box": np.array([[1, 2], [3, 4]], dtype=np.int32),
        "probs": np.array([0.25, 0.75], dtype=np.float64),
    }
    body = _json(wire.success("L", result))
    assert body["result"] == {"score": 0.5, "label": 3, "flag": True, "box": [[1, 2], [3, 4]], "probs": [0.25, 0.75]}
    assert isinstance(body["result"]["label"], int)


def test_success_rejects_an_unserialisable_result():
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        wire.success("L", {"x": object()})


def test_success_dumps_pydantic_models_by_alias():
    class Result(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(populate_by_name=True)
        index_key: str = pydantic.Field(alias="indexKey")
        count: int

    body = _json(wire.success("L", Result(index_key="k", count=2)))
    assert body["result"] == {"indexKey": "k", "count": 2}


def test_request_error_envelope():
    assert _json(wire.request_error("L", RequestError("topk: must be positive"))) == {
        "logId": "L",
        "errorCode": 422,
        "errorMsg": "topk: must be positive",
    }
    assert _json(wire.request_error("L", RequestError()))["errorMsg"] == "request cannot be served"


# --- JsonModel.answer ------------------------------------------------------------------------


class Echo(JsonModel):
    """Answers each request with its own value; 13 is a request error, 66 an internal failure."""

    Request = Request

    def __init__(self, tmp_path: Path):
        self.context = ServerContext(root=tmp_path, model_name="echo")
        self.batches: list[list[int]] = []

    def infer_batch(self, requests):
        self.batches.append([request.value for request in requests])
        return super().infer_batch(requests)

    def infer(self, request):
        if request.value == 13:
            raise RequestError("value: 13 is unlucky")
        if request.value == 66:
            raise RuntimeError("secret internal detail /opt/model/weights")
        return {"echo": request.value, "text": "值"}


@pytest.fixture
def echo(tmp_path) -> Echo:
    return Echo(tmp_path)


def test_answer_keeps_positions_when_valid_and_invalid_requests_mix(echo):
    documents = [
        b'{"logId":"a","value":1}',
        b"not json",
        b'{"logId":"c","value":3}',
        b'{"logId":"d"}',
        b'{"logId":"e","value":5}',
    ]
    answers = [_json(raw) for raw in echo.answer(documents)]
    assert len(answers) == 5
    assert answers[0] == {"logId": "a", "errorCode": 0, "errorMsg": "Success", "result": {"echo": 1, "text": "值"}}
    assert answers[1]["errorCode"] == 422 and "not valid JSON" in answers[1]["errorMsg"]
    assert answers[2]["logId"] == "c" and answers[2]["result"]["echo"] == 3
    assert answers[3]["logId"] == "d" and answers[3]["errorCode"] == 422 and "value" in answers[3]["errorMsg"]
    assert answers[4]["logId"] == "e" and answers[4]["result"]["echo"] == 5
    assert echo.batches == [[1, 3, 5]]  # the valid ones go to the pipeline together, in order


def test_answer_is_compact_utf8(echo):
    (raw,) = echo.answer([b'{"logId":"a","value":1}'])
    assert raw == '{"logId":"a","errorCode":0,"errorMsg":"Success","result":{"echo":1,"text":"值"}}'.encode()


def test_answer_with_only_invalid_requests_never_calls_the_pipeline(echo):
    answers = [_json(raw) for raw in echo.answer([b"[]", b"{}"])]
    assert [answer["errorCode"] for answer in answers] == [422, 422]
    assert echo.batches == []


def test_answer_empty_batch(echo):
    assert echo.answer([]) == []


def test_request_error_is_a_422_with_its_message(echo):
    answers = [_json(raw) for raw in echo.answer([b'{"logId":"a","value":13}', b'{"logId":"b","value":2}'])]
    assert answers[0] == {"logId": "a", "errorCode": 422, "errorMsg": "value: 13 is unlucky"}
    assert answers[1]["errorCode"] == 0 and answers[1]["result"]["echo"] == 2


def test_other_exception_is_a_500_without_details(echo, capsys):
    raws = echo.answer([b'{"logId":"a","value":66}', b'{"logId":"b","value":2}'])
    answer = _json(raws[0])
    assert answer == {"logId": "a", "errorCode": 500, "errorMsg": INTERNAL_ERROR}
    assert b"secret" not in raws[0] and b"Traceback" not in raws[0] and b"RuntimeError" not in raws[0]
    assert _json(raws[1])["result"]["echo"] == 2
    logged = capsys.readouterr().err
    assert "logId a" in logged and "secret internal detail" in logged  # the details go to the log


def test_unserialisable_result_is_a_500(tmp_path):
    class Bad(Echo):
        def infer(self, request):
            return {"x": object()} if request.value == 1 else {"ok": request.value}

    answers = [_json(raw) for raw in Bad(tmp_path).answer([b'{"logId":"a","value":1}', b'{"logId":"b","value":2}'])]
    assert answers[0] == {"logId": "a", "errorCode": 500, "errorMsg": INTERNAL_ERROR}
    assert answers[1]["result"] == {"ok": 2}


@pytest.mark.parametrize("returned", [[], [{"one": 1}], [{"one": 1}] * 3])
def test_infer_batch_with_the_wrong_number_of_results_fails_every_valid_request(tmp_path, returned):
    class Miscounting(Echo):
        def infer_batch(self, requests):
            return list(returned)

    raws = Miscounting(tmp_path).answer([b'{"logId":"a","value":1}', b"{}", b'{"logId":"c","value":3}'])
    answers = [_json(raw) for raw in raws]
    assert answers[0] == {"logId": "a", "errorCode": 500, "errorMsg": INTERNAL_ERROR}
    assert answers[1]["errorCode"] == 422
    assert answers[2] == {"logId": "c", "errorCode": 500, "errorMsg": INTERNAL_ERROR}


def test_infer_batch_raising_fails_every_valid_request(tmp_path):
    class Crashing(Echo):
        def infer_batch(self, requests):
            raise RuntimeError("boom")

    answers = [
        _json(raw) for raw in Crashing(tmp_path).answer([b'{"logId":"a","value":1}', b'{"logId":"b","value":2}'])
    ]
    assert [answer["errorCode"] for answer in answers] == [500, 500]
    assert [answer["logId"] for answer in answers] == ["a", "b"]


def test_infer_batch_may_return_exceptions_per_request(tmp_path):
    class Batched(Echo):
        def infer_batch(self, requests):
            return [RequestError("first is bad"), {"fine": requests[1].value}]

    answers = [_json(raw) for raw in Batched(tmp_path).answer([b'{"value":1}', b'{"value":2}'])]
    assert answers[0]["errorCode"] == 422 and answers[0]["errorMsg"] == "first is bad"
    assert answers[1]["result"] == {"fine": 2}


def test_pydantic_results_are_dumped(tmp_path):
    class Category(pydantic.BaseModel):
        class_id: int = pydantic.Field(serialization_alias="classId")
        score: float

    class Typed(Echo):
        def infer(self, request):
            return Category(class_id=request.value, score=0.5)

    (raw,) = Typed(tmp_path).answer([b'{"logId":"a","value":4}'])
    assert _json(raw)["result"] == {"classId": 4, "score": 0.5}


@pytest.mark.parametrize("invalid", [b'{"logId":"\\ud800"}', b'{"logId":"\\ud800","value":1}'])
def test_a_surrogate_log_id_never_breaks_the_batch(echo, invalid):
    answers = [_json(raw) for raw in echo.answer([invalid, b'{"logId":"b","value":2}'])]
    assert answers[0]["errorCode"] in (422, 500)
    assert answers[1]["result"]["echo"] == 2


def test_answer_logs_the_batch(echo, capsys):
    echo.answer([b'{"logId":"a","value":1}', b'{"logId":"b","value":2}'])
    logged = capsys.readouterr().err
    assert "echo: 2 request(s)" in logged and "logId a, b" in logged


# --- JsonModel.execute (with a stand-in for Triton's triton_python_backend_utils) ---------------


def _fake_pb_utils() -> types.ModuleType:
    """The parts of triton_python_backend_utils that execute and the metrics use."""
    pb_utils = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name: str, array: np.ndarray):
            self.name, self.array = name, array

        def as_numpy(self) -> np.ndarray:
            return self.array

    class InferenceRequest:
        def __init__(self, *tensors: Tensor):
            self.tensors = {tensor.name: tensor for tensor in tensors}

    class InferenceResponse:
        def __init__(self, output_tensors: list[Tensor], error=None):
            self.output_tensors, self.error = output_tensors, error

    class MetricFamily:
        COUNTER = "counter"
        counts: dict[tuple, float] = {}  # (family, labels...) -> value

        def __init__(self, name: str, description: str, kind: str):
            assert kind == MetricFamily.COUNTER
            self.name = name

        def Metric(self, labels: dict):  # Triton's name
            family, key = MetricFamily, (self.name, *sorted(labels.items()))

            class Counter:
                def increment(self, value: float) -> None:
                    family.counts[key] = family.counts.get(key, 0) + value

            return Counter()

    def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
        return request.tensors.get(name)

    pb_utils.Tensor, pb_utils.InferenceRequest, pb_utils.InferenceResponse = Tensor, InferenceRequest, InferenceResponse
    pb_utils.MetricFamily, pb_utils.get_input_tensor_by_name = MetricFamily, get_input_tensor_by_name
    return pb_utils


@pytest.fixture
def pb_utils(monkeypatch):
    from hps_server import metrics

    fake = _fake_pb_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    # Counters registered with the fake stay with it; the totals start from zero.
    monkeypatch.setattr(metrics, "_families", {})
    monkeypatch.setattr(metrics, "_metrics", {})
    metrics.reset()
    yield fake
    metrics.close()
    metrics.reset()


def _documents(*documents: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """A BYTES tensor as Triton hands it to the python backend: an object array of bytes."""
    array = np.empty(len(documents), dtype=np.object_)
    array[:] = list(documents)
    return array.reshape(shape)


def test_execute_answers_each_document_of_multi_document_requests_in_its_own_slot(echo, pb_utils):
    first = _documents(b'{"logId":"a","value":1}', b'{"logId":"b"}', b'{"logId":"c","value":3}', shape=(3, 1))
    second = _documents(b'{"logId":"d","value":4}', shape=(1, 1))
    requests = [
        pb_utils.InferenceRequest(pb_utils.Tensor("input", first)),
        pb_utils.InferenceRequest(pb_utils.Tensor("input", second)),
    ]

    responses = echo.execute(requests)

    assert len(responses) == 2
    outputs = []
    for response, sent in zip(responses, (first, second), strict=True):
        (tensor,) = response.output_tensors
        assert tensor.name == "output"
        assert tensor.as_numpy().shape == sent.shape and tensor.as_numpy().dtype == np.object_
        outputs.append([_json(raw) for raw in tensor.as_numpy().reshape(-1)])
    (a, b, c), (d,) = outputs
    assert a == {"logId": "a", "errorCode": 0, "errorMsg": "Success", "result": {"echo": 1, "text": "值"}}
    assert b["logId"] == "b" and b["errorCode"] == 422 and "value: Field required" in b["errorMsg"]
    assert c["logId"] == "c" and c["result"]["echo"] == 3
    assert d["logId"] == "d" and d["result"]["echo"] == 4
    assert echo.batches == [[1, 3, 4]]  # the valid documents of both requests went to the pipeline together
    from hps_server import metrics

    metrics.flush()  # what the background thread sends once a second
    counts = pb_utils.MetricFamily.counts
    requests = {key: value for key, value in counts.items() if key[0] == "hps_requests_total"}
    assert requests == {
        ("hps_requests_total", ("error_code", "0"), ("model", "echo")): 3,
        ("hps_requests_total", ("error_code", "422"), ("model", "echo")): 1,
    }
    # Every document of the batch observed each stage once; the buckets are cumulative.
    for stage in ("decode", "preprocess", "inference", "postprocess", "encode"):
        labels = (("model", "echo"), ("stage", stage))
        assert counts[("hps_stage_seconds_count", *labels)] == 4
        assert counts[("hps_stage_seconds_bucket", ("le", "+Inf"), *labels)] == 4
        assert counts[("hps_stage_seconds_sum", *labels)] >= 0


def test_execute_request_of_only_invalid_documents(echo, pb_utils):
    documents = _documents(b"not json", b"{}", shape=(2, 1))
    (response,) = echo.execute([pb_utils.InferenceRequest(pb_utils.Tensor("input", documents))])
    answers = [_json(raw) for raw in response.output_tensors[0].as_numpy().reshape(-1)]
    assert response.output_tensors[0].as_numpy().shape == (2, 1)
    assert [answer["errorCode"] for answer in answers] == [422, 422]
    assert echo.batches == []


# --- ServerContext ---------------------------------------------------------------------------


def _context(tmp_path: Path, allowlist: str = "", settings: dict | None = None) -> ServerContext:
    from hps_server.context import _origins

    return ServerContext(root=tmp_path, model_name="m", settings=settings or {}, url_allowlist=_origins(allowlist))


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://a.example/img.jpg", True),
        ("https://a.example", True),
        ("https://A.Example/path?q=1", True),
        ("https://a.example.evil.org/img.jpg", False),
        ("http://a.example/img.jpg", False),
        ("https://evil.org/a.example", False),
        ("https://a.example@evil.org/img.jpg", False),
        ("https://evil.org#https://a.example", False),
        ("https://a.example:8443/img.jpg", False),
        ("https://b.example:8443/img.jpg", True),
        ("https://b.example/img.jpg", False),
        ("ftp://a.example/img.jpg", False),
        ("a.example/img.jpg", False),
    ],
)
def test_url_allowed_by_exact_origin(tmp_path, url, allowed):
    context = _context(tmp_path, "https://a.example, https://b.example:8443/any/path")
    assert context.url_allowed(url) is allowed


def test_no_url_is_allowed_by_default(tmp_path):
    context = ServerContext(root=tmp_path, model_name="m")
    assert context.url_allowlist == frozenset()
    assert not context.url_allowed("https://a.example/x.jpg")


def test_origins_normalise_entries():
    from hps_server.context import _origins

    assert _origins("") == frozenset()
    assert _origins(" , ,") == frozenset()
    assert _origins("https://A.example/path, http://b.example:8080 ,") == {"https://a.example", "http://b.example:8080"}


@pytest.mark.parametrize("entry", ["ftp://a.example", "a.example", "file:///etc/passwd", "https://", "//a.example"])
def test_origins_reject_non_http_entries(entry):
    from hps_server.context import _origins

    with pytest.raises(ValueError, match="HPS_URL_ALLOWLIST entry") as caught:
        _origins(f"https://ok.example,{entry}")
    assert repr(entry) in str(caught.value)


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    topk: int = 5
    labels: list[str]


def test_settings_as_validates(tmp_path):
    settings = _context(tmp_path, settings={"labels": ["a", "b"]}).settings_as(Settings)
    assert settings == Settings(topk=5, labels=["a", "b"])


@pytest.mark.parametrize("bad", [{"labels": ["a"], "topk": "many"}, {}, {"labels": [], "surplus": 1}])
def test_settings_as_names_pipeline_toml(tmp_path, bad):
    with pytest.raises(ValueError) as caught:
        _context(tmp_path, settings=bad).settings_as(Settings)
    assert not isinstance(caught.value, pydantic.ValidationError)
    assert f"{tmp_path / 'pipeline.toml'} [settings]:" in str(caught.value)


def test_model_dir(tmp_path):
    (tmp_path / "models" / "det").mkdir(parents=True)
    context = _context(tmp_path)
    assert context.model_dir("det") == tmp_path / "models" / "det"
    with pytest.raises(FileNotFoundError) as caught:
        context.model_dir("rec")
    assert str(tmp_path / "models" / "rec") in str(caught.value) and "'rec'" in str(caught.value)


def test_model_dir_that_is_a_file_is_missing(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "det").write_text("not a folder")
    with pytest.raises(FileNotFoundError):
        _context(tmp_path).model_dir("det")


HPS_ENV = ("HPS_CPU_THREADS", "HPS_STATE_DIR", "HPS_URL_ALLOWLIST", "HPS_SERVER_ROOT")


@pytest.fixture
def clean_env(monkeypatch):
    for name in HPS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _triton_args(model_dir: Path, **extra) -> dict:
    return {"model_repository": str(model_dir), "model_name": model_dir.name, "model_version": "1", **extra}


def test_from_triton_args_reads_settings_and_environment(tmp_path, clean_env):
    root = tmp_path / "srv"
    model_dir = root / "model_repo" / "ocr"
    model_dir.mkdir(parents=True)
    (root / "pipeline.toml").write_text('description = "x"\n\n[settings]\ntopk = 3\nlabels = ["a"]\n', encoding="utf-8")
    clean_env.setenv("HPS_CPU_THREADS", "3")
    clean_env.setenv("HPS_STATE_DIR", str(tmp_path / "state"))
    clean_env.setenv("HPS_URL_ALLOWLIST", "https://img.example,http://10.0.0.1:8080/x")
    context = ServerContext.from_triton_args(
        _triton_args(model_dir, model_instance_kind="GPU", model_instance_device_id="1")
    )
    assert context.root == root
    assert context.model_name == "ocr"
    assert (context.device, context.device_id, context.threads) == ("gpu", 1, 3)
    assert context.settings == {"topk": 3, "labels": ["a"]}
    assert context.state_dir == tmp_path / "state"
    assert context.url_allowlist == {"https://img.example", "http://10.0.0.1:8080"}
    assert context.settings_as(Settings).topk == 3


def test_from_triton_args_defaults(tmp_path, clean_env):
    model_dir = tmp_path / "srv" / "model_repo" / "ocr"
    model_dir.mkdir(parents=True)
    context = ServerContext.from_triton_args(_triton_args(model_dir, model_instance_kind="CPU"))
    assert (context.device, context.device_id) == ("cpu", 0)
    assert context.settings == {}
    assert 1 <= context.threads <= 4
    assert context.state_dir == Path.home() / "hps-state"
    assert context.url_allowlist == frozenset()


def test_from_triton_args_pipeline_toml_without_settings(tmp_path, clean_env):
    root = tmp_path / "srv"
    (root / "model_repo" / "m").mkdir(parents=True)
    (root / "pipeline.toml").write_text('description = "x"\n', encoding="utf-8")
    assert ServerContext.from_triton_args(_triton_args(root / "model_repo" / "m")).settings == {}


def test_from_triton_args_server_root_overrides(tmp_path, clean_env):
    model_dir = tmp_path / "elsewhere" / "repo" / "m"
    model_dir.mkdir(parents=True)
    root = tmp_path / "root"
    root.mkdir()
    (root / "pipeline.toml").write_text("[settings]\nlabels = []\n", encoding="utf-8")
    clean_env.setenv("HPS_SERVER_ROOT", str(root))
    context = ServerContext.from_triton_args(_triton_args(model_dir))
    assert context.root == root
    assert context.settings == {"labels": []}


def test_from_triton_args_rejects_a_bad_allowlist(tmp_path, clean_env):
    model_dir = tmp_path / "srv" / "model_repo" / "m"
    model_dir.mkdir(parents=True)
    clean_env.setenv("HPS_URL_ALLOWLIST", "img.example")
    with pytest.raises(ValueError, match="HPS_URL_ALLOWLIST"):
        ServerContext.from_triton_args(_triton_args(model_dir))


# --- images.decode_bytes ---------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG_B64 = base64.b64encode(PNG).decode()


def _request_error(value: str, context: ServerContext, field: str = "image") -> str:
    with pytest.raises(RequestError) as caught:
        images.decode_bytes(value, context, field)
    assert caught.value.code == 422
    return str(caught.value)


def test_decode_bytes_base64(tmp_path):
    assert images.decode_bytes(PNG_B64, _context(tmp_path)) == PNG


def test_decode_bytes_data_url(tmp_path):
    assert images.decode_bytes(f"data:image/png;base64,{PNG_B64}", _context(tmp_path)) == PNG


@pytest.mark.parametrize("value", ["not base64!", "QUJD$", "QUJDRA", f"{PNG_B64[:20]}\n{PNG_B64[20:]}", "ÄÖÜ"])
def test_decode_bytes_invalid_base64_names_the_field(tmp_path, value):
    assert _request_error(value, _context(tmp_path), "file") == "file: not valid base64"


@pytest.mark.parametrize("value", ["", "data:image/png;base64,"])
def test_decode_bytes_empty(tmp_path, value):
    assert _request_error(value, _context(tmp_path), "file") == "file: empty"


def test_decode_bytes_url_not_allowed(tmp_path):
    message = _request_error("https://evil.example/a.png", _context(tmp_path, "https://img.example"), "image")
    assert message.startswith("image: URL inputs are not allowed")
    assert "HPS_URL_ALLOWLIST" in message


def test_decode_bytes_url_not_allowed_by_default(tmp_path):
    assert "HPS_URL_ALLOWLIST" in _request_error(
        "http://127.0.0.1:9/a.png", ServerContext(root=tmp_path, model_name="m")
    )


class _LocalServer:
    """A loopback http.server: /image answers PNG, /redirect answers a 302 to /image."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/image")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200 if self.path == "/image" else 404)
                body = PNG if self.path == "/image" else b"missing"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = _LocalServer()
    yield server
    server.close()


def test_decode_bytes_fetches_an_allowed_url(tmp_path, local_server):
    context = _context(tmp_path, local_server.origin)
    assert images.decode_bytes(f"{local_server.origin}/image", context) == PNG


def test_decode_bytes_does_not_follow_redirects(tmp_path, local_server):
    message = _request_error(f"{local_server.origin}/redirect", _context(tmp_path, local_server.origin))
    assert message.startswith(f"image: cannot fetch {local_server.origin}/redirect")


def test_decode_bytes_http_error(tmp_path, local_server):
    assert "cannot fetch" in _request_error(f"{local_server.origin}/nope", _context(tmp_path, local_server.origin))


def test_decode_bytes_url_over_the_size_limit(tmp_path, local_server, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", len(PNG) - 1)
    message = _request_error(f"{local_server.origin}/image", _context(tmp_path, local_server.origin))
    assert message.endswith(f"is larger than {len(PNG) - 1} bytes")


def test_decode_bytes_connection_refused(tmp_path):
    with socket.socket() as sock:  # bound, not listening: connecting is refused at once
        sock.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
        message = _request_error(f"{origin}/a.png", _context(tmp_path, origin))
    assert message.startswith(f"image: cannot fetch {origin}/a.png")


def test_decode_image(tmp_path):
    cv2 = pytest.importorskip("cv2")
    ok, encoded = cv2.imencode(".png", np.full((4, 6, 3), 200, dtype=np.uint8))
    assert ok
    array = images.decode_image(base64.b64encode(encoded.tobytes()).decode(), _context(tmp_path))
    assert array.shape == (4, 6, 3) and array.dtype == np.uint8
    with pytest.raises(RequestError, match="image: not a decodable image"):
        images.decode_image(PNG_B64, _context(tmp_path))
