"""Check 2: Triton's protocol: health, model readiness, metadata, config, statistics, metrics."""

from __future__ import annotations

import json
import time

import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings


def _settled(read, expected: float, timeout_s: float = 10.0) -> float:
    """`read()` once it equals `expected` (Triton updates statistics and metrics just after it
    answers), or its last value when the time is up."""
    deadline = time.monotonic() + timeout_s
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def _steady(read, interval_s: float = 1.5, timeout_s: float = 15.0):
    """`read()` once two reads `interval_s` apart agree: the runtime's own metrics (hps_*) reach
    Triton once a second, so counts of earlier requests may still be on their way."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        if (again := read()) == value:
            break
        value = again
    return value


def _models(pipeline: str) -> list[str]:
    return sorted(
        path.name
        for path in (settings().pipelines_dir / pipeline / "server" / "model_repo").iterdir()
        if (path / "config.pbtxt").exists()
    )


def _target(pipeline: str) -> goldens.GoldenFile:
    return goldens.load_file(settings().pipelines_dir / pipeline)


def test_server_live_and_ready(server, record_property):
    import tritonclient.grpc as grpc

    if server.ready_seconds is not None:
        record_property("ready_s", round(server.ready_seconds, 1))
    assert wire.call(server.http, "GET", "/v2/health/live")[0] == 200
    assert wire.call(server.http, "GET", "/v2/health/ready")[0] == 200
    client = grpc.InferenceServerClient(server.grpc)
    try:
        assert client.is_server_live() and client.is_server_ready()
    finally:
        client.close()


def test_every_model_ready_with_metadata_and_config(pipeline, server):
    for model in _models(pipeline):
        assert wire.call(server.http, "GET", f"/v2/models/{model}/ready")[0] == 200, f"{model} is not ready"
        status, body = wire.call(server.http, "GET", f"/v2/models/{model}")
        assert status == 200, f"{model} metadata: {status} {body[:200]!r}"
        assert json.loads(body)["name"] == model
        status, body = wire.call(server.http, "GET", f"/v2/models/{model}/config")
        assert status == 200 and json.loads(body)["name"] == model, f"{model} config: {status}"
    public = _target(pipeline).conformance.model
    metadata = json.loads(wire.call(server.http, "GET", f"/v2/models/{public}")[1])
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("input", "BYTES")]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [("output", "BYTES")]


def test_statistics_count_inferences(pipeline, server, fixtures_dir):
    target = _target(pipeline)

    def count() -> int:
        status, body = wire.call(server.http, "GET", f"/v2/models/{target.conformance.model}/stats")
        assert status == 200, f"statistics endpoint answered {status}"
        return sum(stat["inference_count"] for stat in json.loads(body)["model_stats"])

    before = count()
    request = goldens.resolve(
        target.valid_case.request, settings().pipelines_dir / pipeline / "goldens", fixtures_dir, {}
    )
    assert wire.infer(server.http, target.conformance.model, request)[1]["errorCode"] == 0
    assert _settled(count, before + 1) == before + 1


def test_metrics_count_successes_and_failures(pipeline, server, fixtures_dir):
    target = _target(pipeline)
    model = target.conformance.model
    request = goldens.resolve(
        target.valid_case.request, settings().pipelines_dir / pipeline / "goldens", fixtures_dir, {}
    )
    success, answered_ok, answered_422 = _steady(
        lambda: (
            wire.metric(server.metrics, "nv_inference_request_success", model=model),
            wire.metric(server.metrics, "hps_requests_total", model=model, error_code="0"),
            wire.metric(server.metrics, "hps_requests_total", model=model, error_code="422"),
        )
    )
    sent = 3
    for _ in range(sent):
        assert wire.infer(server.http, model, request)[1]["errorCode"] == 0
    assert wire.infer(server.http, model, "not json")[1]["errorCode"] == 422

    def sample(name: str, expected: float, **labels: str) -> float:
        return _settled(lambda: wire.metric(server.metrics, name, model=model, **labels), expected)

    assert sample("nv_inference_request_success", success + sent + 1) == success + sent + 1
    assert sample("hps_requests_total", answered_ok + sent, error_code="0") == answered_ok + sent
    assert sample("hps_requests_total", answered_422 + 1, error_code="422") == answered_422 + 1


def test_stage_timings_are_on_the_metrics_port(pipeline, server, fixtures_dir):
    """The tracer: every stage of an answered request is counted in hps_stage_seconds (the model
    processes send their counts once a second)."""
    from hps_client import stages

    target = _target(pipeline)
    model = target.conformance.model
    request = goldens.resolve(
        target.valid_case.request, settings().pipelines_dir / pipeline / "goldens", fixtures_dir, {}
    )

    def counts() -> dict[str, float]:
        histograms = stages.parse(stages.scrape(server.metrics))
        return {stage: histograms[(model, stage)].count for stage in stages.STAGES if (model, stage) in histograms}

    before = _steady(counts)
    assert wire.infer(server.http, model, request)[1]["errorCode"] == 0
    expected = {stage: before.get(stage, 0) + 1 for stage in stages.STAGES}
    assert _settled(counts, expected) == expected
    histograms = stages.parse(stages.scrape(server.metrics))
    for stage in stages.STAGES:
        histogram = histograms[(model, stage)]
        assert histogram.buckets[float("inf")] == histogram.count and histogram.sum >= 0, (stage, histogram.buckets)
