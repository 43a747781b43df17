"""Raw HTTP calls of the conformance checks (no client library: the checks see what a client sees)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

TIMEOUT_S = 120


def call(
    http: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    """(status, body) of one HTTP call; error statuses are returned, not raised."""
    request = urllib.request.Request(
        f"http://{http}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def infer_body(documents: list, name: str = "input", datatype: str = "BYTES", shape: list | None = None) -> bytes:
    """A KServe v2 JSON inference body; `documents` are sent as the tensor's data as given."""
    return json.dumps(
        {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(documents), 1], "data": documents}]}
    ).encode()


def infer(http: str, model: str, document: str | dict) -> tuple[int, dict]:
    """(HTTP status, envelope or Triton's error body) for one JSON document."""
    text = document if isinstance(document, str) else json.dumps(document)
    status, body = call(http, "POST", f"/v2/models/{model}/infer", infer_body([text]))
    reply = json.loads(body)
    if status == 200:
        return status, json.loads(reply["outputs"][0]["data"][0])
    return status, reply


def metric(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample on the metrics endpoint (0 when absent)."""
    status, body = call(metrics, "GET", "/metrics")
    assert status == 200, f"metrics endpoint answered {status}"
    for line in body.decode().splitlines():
        match = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} ([0-9.e+-]+)", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    return 0.0
