"""Check 1: every golden case of the pipeline, over HTTP and gRPC, through the client library and
through raw tritonclient, answers exactly what pipelines/<Name>/goldens/cases.toml says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings


def _client_library(endpoint, protocol):
    from hps_client import Client, ServerError

    client = Client(endpoint.http if protocol == "http" else endpoint.grpc, protocol=protocol, timeout=120)

    def send(model: str, request: dict) -> dict:
        try:
            envelope = client.infer(model, request)
            return {
                "logId": envelope.log_id,
                "errorCode": envelope.error_code,
                "errorMsg": envelope.error_msg,
                "result": envelope.result,
            }
        except ServerError as error:
            return {"logId": error.log_id, "errorCode": error.error_code, "errorMsg": error.message}

    return send, client.close


def _raw_tritonclient(endpoint, protocol):
    if protocol == "http":
        import tritonclient.http as triton

        client = triton.InferenceServerClient(endpoint.http, network_timeout=120, connection_timeout=120)
    else:
        import tritonclient.grpc as triton

        client = triton.InferenceServerClient(endpoint.grpc)

    def send(model: str, request: dict) -> dict:
        tensor = triton.InferInput("input", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[json.dumps(request).encode()]], dtype=np.object_))
        answer = client.infer(model, [tensor], outputs=[triton.InferRequestedOutput("output")])
        return json.loads(answer.as_numpy("output").reshape(-1)[0])

    return send, client.close


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("client_kind", ["client-library", "raw-tritonclient"])
def test_golden_cases(pipeline, server, fixtures_dir, protocol, client_kind, record_property):
    make = _client_library if client_kind == "client-library" else _raw_tritonclient
    send, close = make(server, protocol)
    try:
        run = goldens.run(settings().pipelines_dir / pipeline, send, fixtures_dir)
    finally:
        close()
    failures = run.failures
    latencies = {outcome.case.name: outcome.milliseconds for outcome in run.outcomes}
    record_property("latency_ms", {name: round(ms, 1) for name, ms in latencies.items()})
    print(
        f"{pipeline} {protocol} {client_kind} latency (ms): "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in latencies.items())
    )
    assert not failures, f"{pipeline} goldens over {protocol} ({client_kind}):\n  " + "\n  ".join(failures)
