"""hps_requests_total{model, error_code}: every answered request by its envelope's errorCode.

Triton's nv_inference_request_success counts a 422 or 500 envelope as a success (the model did
answer), so the outcome clients see is counted here, on Triton's metrics endpoint (port 8002).
"""

from __future__ import annotations

import json

from hps_server import log

NAME = "hps_requests_total"
_family = None
_counters: dict[tuple[str, int], object] = {}


def _counter(model: str, code: int):
    global _family
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # outside the backend stub: nothing to export
        return None
    if (model, code) not in _counters:
        try:
            if _family is None:
                _family = pb_utils.MetricFamily(
                    name=NAME, description="requests answered, by the envelope's errorCode",
                    kind=pb_utils.MetricFamily.COUNTER)
            _counters[(model, code)] = _family.Metric(labels={"model": model, "error_code": str(code)})
        except Exception as error:  # metrics must never cost an answer
            log.error(f"{NAME}: cannot register a counter for {model}/{code}: {error}")
            _counters[(model, code)] = None
    return _counters[(model, code)]


def count(model: str, envelopes: list[bytes]) -> None:
    """Count each answered envelope under its errorCode."""
    for envelope in envelopes:
        try:
            code = int(json.loads(envelope).get("errorCode", 500))
        except (ValueError, TypeError, AttributeError):
            code = 500
        counter = _counter(model, code)
        if counter is not None:
            counter.increment(1)
