"""The runtime's metrics on Triton's metrics endpoint (port 8002):

    hps_requests_total{model, error_code}        answered requests by the envelope's errorCode
                                                 (Triton's nv_inference_request_success counts a
                                                 422 or 500 envelope as a success)
    hps_stage_seconds_bucket{model, stage, le}   the tracer's stage times (see `trace`), as the
    hps_stage_seconds_sum{model, stage}          series of a Prometheus histogram:
    hps_stage_seconds_count{model, stage}        histogram_quantile() works on them

Every metric update in Triton's python backend is a round trip to the server process (about 25 µs
each, measured), so a request would pay for one per stage and bucket. Instead each model
process adds up here, in memory, and a background thread sends the increments once per
HPS_METRICS_INTERVAL_S (1 s): the series lag by at most that much. Triton has no bulk update for
its own histogram kind, so the three series are counters (their `# TYPE` line says counter).
Outside Triton (tests, in-process runs) the totals stay here: `snapshot()` reads them.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict

from hps_server import log
from hps_server.trace import STAGES

REQUESTS = "hps_requests_total"
STAGE = "hps_stage_seconds"
# Upper bounds (seconds) of the stage histogram's buckets; +Inf is implied.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0)
INTERVAL_S = float(os.environ.get("HPS_METRICS_INTERVAL_S", "1.0"))

_lock = threading.Lock()
_requests: dict[tuple[str, str], int] = defaultdict(int)  # (model, errorCode) -> answers
# (model, stage) -> [count per bucket (BUCKETS, then +Inf), sum of seconds]
_stages: dict[tuple[str, str], list] = {}
_sent_requests: dict[tuple[str, str], int] = defaultdict(int)
_sent_stages: dict[tuple[str, str], list] = {}
_flusher: threading.Thread | None = None
_checked = False
_stop = threading.Event()
_families: dict[str, object] = {}
_metrics: dict[tuple, object] = {}


def _bucket(seconds: float) -> int:
    for index, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return index
    return len(BUCKETS)


def count(model: str, envelopes: list[bytes]) -> None:
    """Count each answered envelope under its errorCode."""
    codes = []
    for envelope in envelopes:
        try:
            codes.append(str(int(json.loads(envelope).get("errorCode", 500))))
        except (ValueError, TypeError, AttributeError):
            codes.append("500")
    with _lock:
        for code in codes:
            _requests[(model, code)] += 1
    _ensure_flusher()


def observe_stages(model: str, seconds: dict[str, float], requests: int = 1) -> None:
    """`requests` requests each spent `seconds[stage]` in each stage."""
    if requests <= 0:
        return
    with _lock:
        for name in STAGES:
            value = seconds.get(name, 0.0)
            entry = _stages.get((model, name))
            if entry is None:
                entry = _stages[(model, name)] = [0] * (len(BUCKETS) + 1) + [0.0]
            entry[_bucket(value)] += requests
            entry[-1] += value * requests
    _ensure_flusher()


def snapshot() -> dict:
    """The totals this process has counted: {"requests": {(model, code): n}, "stages": {(model,
    stage): {"buckets": [(le, cumulative count)], "sum": s, "count": n}}}."""
    with _lock:
        stages = {key: _histogram(entry) for key, entry in _stages.items()}
        return {"requests": dict(_requests), "stages": stages}


def _histogram(entry: list) -> dict:
    cumulative, running = [], 0
    for bound, number in zip([*BUCKETS, float("inf")], entry[:-1]):
        running += number
        cumulative.append((bound, running))
    return {"buckets": cumulative, "sum": entry[-1], "count": running}


def reset() -> None:
    """Forget every total (tests and in-process benchmarks start from zero)."""
    with _lock:
        _requests.clear()
        _stages.clear()
        _sent_requests.clear()
        _sent_stages.clear()


# --- export to Triton -------------------------------------------------------------------------


def _pb_utils():
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # outside the backend stub: nothing to export
        return None
    return pb_utils if hasattr(pb_utils, "MetricFamily") else None


def _metric(pb_utils, family: str, description: str, labels: dict[str, str]):
    key = (family, *sorted(labels.items()))
    if key not in _metrics:
        if family not in _families:
            # Kept for the life of the process: Triton refuses a metric whose family is gone.
            _families[family] = pb_utils.MetricFamily(name=family, description=description,
                                                      kind=pb_utils.MetricFamily.COUNTER)
        _metrics[key] = _families[family].Metric(labels=labels)
    return _metrics[key]


def _deltas() -> tuple[dict, dict]:
    """What changed since the last flush, marked as sent."""
    with _lock:
        requests = {key: value - _sent_requests[key] for key, value in _requests.items()
                    if value != _sent_requests[key]}
        _sent_requests.update({key: _requests[key] for key in requests})
        stages = {}
        for key, entry in _stages.items():
            sent = _sent_stages.get(key) or [0] * len(entry)
            if entry != sent:
                stages[key] = [now - before for now, before in zip(entry, sent)]
                _sent_stages[key] = list(entry)
        return requests, stages


def flush() -> None:
    """Send the increments since the last flush to Triton (no-op outside the backend stub)."""
    pb_utils = _pb_utils()
    if pb_utils is None:
        return
    requests, stages = _deltas()
    try:
        for (model, code), delta in requests.items():
            _metric(pb_utils, REQUESTS, "requests answered, by the envelope's errorCode",
                    {"model": model, "error_code": code}).increment(delta)
        for (model, name), delta in stages.items():
            labels = {"model": model, "stage": name}
            running = 0
            for bound, number in zip([*BUCKETS, float("inf")], delta[:-1]):
                running += number
                if running:
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    _metric(pb_utils, f"{STAGE}_bucket", "requests by seconds spent in a stage, cumulative (le)",
                            {**labels, "le": le}).increment(running)
            if running:
                _metric(pb_utils, f"{STAGE}_count", "requests timed, per stage", labels).increment(running)
                _metric(pb_utils, f"{STAGE}_sum", "seconds spent in a stage, all requests", labels).increment(delta[-1])
    except Exception as error:  # metrics must never cost an answer
        log.error(f"hps metrics: cannot update Triton's metrics: {error}")


def _run_flusher() -> None:
    while not _stop.wait(INTERVAL_S):
        flush()


def _ensure_flusher() -> None:
    global _flusher, _checked
    if _flusher is None and not _checked:
        with _lock:
            _checked = True  # looked up once: outside the stub there is nothing to start
            if _flusher is None and _pb_utils() is not None:
                _stop.clear()
                _flusher = threading.Thread(target=_run_flusher, name="hps-metrics", daemon=True)
                _flusher.start()


def close() -> None:
    """Stop the background thread and send what is left (a model's finalize)."""
    global _flusher, _checked
    thread, _flusher, _checked = _flusher, None, False
    if thread is not None:
        _stop.set()
        thread.join(timeout=5)
    flush()
