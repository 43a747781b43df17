"""Check 6: model management is restricted. Without the key the model-repository API refuses (HTTP:
a 4xx naming the restriction; gRPC: an error naming it) and the model keeps serving; with the key
a model unloads, loads again and answers its golden request as before.

The key travels as the HTTP header `hps-admin-key`; over gRPC Triton prefixes the restricted key
of --grpc-restricted-protocol, so the metadata it checks is `triton-grpc-protocol-hps-admin-key`."""

from __future__ import annotations

import json
import time

import pytest
import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings

HEADER = "hps-admin-key"
GRPC_HEADER = "triton-grpc-protocol-" + HEADER  # Triton's gRPC form of a restricted-protocol key
SETTLE_S = 1.0  # an accepted unload shows within milliseconds (the model leaves READY at once)
UNLOAD_TIMEOUT_S = 60
LOAD_TIMEOUT_S = 240


@pytest.fixture
def keyed(server):
    if server.admin_key is None:
        pytest.skip(
            "the server's admin key is unknown (give it with --hps-admin-key): model management cannot be checked"
        )
    return server


def _target(pipeline: str) -> goldens.GoldenFile:
    return goldens.load_file(settings().pipelines_dir / pipeline)


def _model_ready(server, model: str) -> bool:
    return wire.call(server.http, "GET", f"/v2/models/{model}/ready")[0] == 200


def _state(server, model: str) -> str:
    status, body = wire.call(server.http, "POST", "/v2/repository/index", b"{}", headers={HEADER: server.admin_key})
    assert status == 200, f"repository index with the key: HTTP {status} {body[:300]!r}"
    return next((entry.get("state", "") for entry in json.loads(body) if entry["name"] == model), "(not listed)")


def _stays_ready(server, model: str, after: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        assert _model_ready(server, model), f"{model} stopped being ready after {after}"
        time.sleep(0.2)


def _repository_call(server, protocol: str, action: str, model: str) -> None:
    """Load or unload `model` with the key; raises (AssertionError or the client's error) if refused."""
    if protocol == "http":
        status, body = wire.call(
            server.http, "POST", f"/v2/repository/models/{model}/{action}", b"{}", headers={HEADER: server.admin_key}
        )
        assert status == 200, f"{action} of {model} with the key over HTTP: {status} {body[:300]!r}"
        return
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(server.grpc)
    try:
        getattr(client, f"{action}_model")(model, headers={GRPC_HEADER: server.admin_key})
    finally:
        client.close()


def test_management_refused_without_the_key(pipeline, keyed):
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    model = _target(pipeline).conformance.model
    assert _model_ready(keyed, model), f"{model} is not ready before the check"
    attempts = {"no key": {}, "a wrong key": {HEADER: "not-" + keyed.admin_key}}
    for label, headers in attempts.items():
        for path in (f"/v2/repository/models/{model}/unload", "/v2/repository/index"):
            status, body = wire.call(keyed.http, "POST", path, b"{}", headers=headers)
            assert 400 <= status < 500, f"POST {path} with {label}: HTTP {status} (expected a 4xx) {body[:300]!r}"
            assert "restricted" in body.decode(errors="replace").lower(), (
                f"POST {path} with {label}: the refusal does not name the restriction: {body[:300]!r}"
            )
        _stays_ready(keyed, model, f"an HTTP unload with {label}")

    client = grpc.InferenceServerClient(keyed.grpc)
    try:
        for label, headers in {"no key": None, "a wrong key": {GRPC_HEADER: "not-" + keyed.admin_key}}.items():
            with pytest.raises(InferenceServerException) as refused:
                client.unload_model(model, headers=headers)
            assert "restricted" in str(refused.value).lower(), (
                f"gRPC unload with {label}: the refusal does not name the restriction: {refused.value}"
            )
            _stays_ready(keyed, model, f"a gRPC unload with {label}")
        assert client.is_model_ready(model)
    finally:
        client.close()


def _wait(condition, timeout_s: float, what: str, server) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout_s:
            pytest.fail(f"{what} not within {timeout_s:.0f} s; the server's log:\n{server.logs()}")
        time.sleep(0.2)
    return time.monotonic() - began


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_management_with_the_key(pipeline, keyed, fixtures_dir, protocol):
    target = _target(pipeline)
    model = target.conformance.model
    pipeline_dir = settings().pipelines_dir / pipeline
    request = goldens.resolve(target.valid_case.request, pipeline_dir / "goldens", fixtures_dir, {})
    try:
        _repository_call(keyed, protocol, "unload", model)
        unloaded_s = _wait(lambda: not _model_ready(keyed, model), UNLOAD_TIMEOUT_S, f"{model} not ready", keyed)
        # Unloading is asynchronous: load again once it finished (state UNAVAILABLE).
        _wait(
            lambda: _state(keyed, model) not in ("READY", "UNLOADING"),
            UNLOAD_TIMEOUT_S,
            f"{model} finished unloading",
            keyed,
        )
        status, reply = wire.infer(keyed.http, model, request)
        assert status != 200, f"{model} still answered after its unload: {str(reply)[:300]}"

        began = time.monotonic()
        _repository_call(keyed, protocol, "load", model)
        _wait(lambda: _model_ready(keyed, model), LOAD_TIMEOUT_S, f"{model} ready again", keyed)
        loaded_s = time.monotonic() - began
        print(
            f"{pipeline} {protocol}: {model} not ready {unloaded_s:.2f} s after the unload; "
            f"loaded again in {loaded_s:.1f} s"
        )
        status, envelope = wire.infer(keyed.http, model, request)
        assert status == 200, f"{model} after the reload: HTTP {status} {str(envelope)[:300]}"
        problems = goldens.problems(target.valid_case, envelope)
        assert not problems, f"{model} after the reload, case {target.valid_case.name}:\n  " + "\n  ".join(problems)
    finally:
        if not _model_ready(keyed, model):
            _repository_call(keyed, "http", "load", model)
