"""The tracer: where a request's time goes, by stage.

    decode       the request document (JSON, validation) and its images (base64, the image decoder)
    preprocess   the pipeline's own work before (and between) model runs
    inference    model runs: every Paddle predictor made by `paddle_predictor` is timed on its own;
                 other engines mark theirs with `with trace.stage("inference"):`
    postprocess  the pipeline's work after the last model run
    encode       the response envelope (JSON)

JsonModel opens a clock around each execution batch; the runtime's own code (wire decoding, image
decoding, predictor runs, envelopes) marks its stages, and the time in between is attributed to
preprocess (up to the end of the last model run) or postprocess (after it), so a pipeline needs no
tracing code. Every request of a batch observes the time its batch spent in each stage: what it
waited for. The stage seconds go to `metrics` (hps_stage_seconds on Triton's metrics port).
"""

from __future__ import annotations

import threading
import time

STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")
_state = threading.local()


class Clock:
    """The stage times of one execution batch (not thread-safe: one per executing thread)."""

    __slots__ = ("started", "explicit", "open", "last_inference_end", "since_inference")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.explicit = dict.fromkeys(STAGES, 0.0)
        self.open = False  # inside a marked stage: nested marks add nothing (the outer one counts)
        self.last_inference_end: float | None = None
        self.since_inference = 0.0  # marked time after the last inference ended

    def add(self, name: str, seconds: float, ended: float) -> None:
        self.explicit[name] += seconds
        if name == "inference":
            self.last_inference_end = ended
            self.since_inference = 0.0
        else:
            self.since_inference += seconds

    def stages(self, ended: float | None = None) -> dict[str, float]:
        """Seconds per stage, the unmarked time split at the end of the last model run."""
        ended = time.perf_counter() if ended is None else ended
        result = dict(self.explicit)
        marked = sum(self.explicit.values())
        if self.last_inference_end is None:
            result["preprocess"] += max(0.0, ended - self.started - marked)
        else:
            after = max(0.0, ended - self.last_inference_end - self.since_inference)
            before = max(0.0, self.last_inference_end - self.started - (marked - self.since_inference))
            result["preprocess"] += before
            result["postprocess"] += after
        return result


def start() -> Clock:
    """A new clock for the calling thread's batch (replacing any earlier one)."""
    clock = Clock()
    _state.clock = clock
    return clock


def stop() -> None:
    _state.clock = None


def current() -> Clock | None:
    return getattr(_state, "clock", None)


class stage:  # noqa: N801 (used like a function: `with trace.stage("inference"):`)
    """Mark a block as one stage of the current batch; outside a batch it costs nothing."""

    __slots__ = ("name", "clock", "begun")

    def __init__(self, name: str):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        self.name = name

    def __enter__(self) -> "stage":
        clock = current()
        self.clock = clock if clock is not None and not clock.open else None
        if self.clock is not None:
            self.clock.open = True
            self.begun = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.clock is not None:
            ended = time.perf_counter()
            self.clock.open = False
            self.clock.add(self.name, ended - self.begun, ended)
