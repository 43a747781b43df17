"""Base classes for python-backend models (Triton's TritonPythonModel protocol).

JsonModel serves one JSON endpoint: each request in a dynamic batch is decoded and validated on
its own, the valid ones go to the pipeline together, and every request gets its own answer in its
own position (an invalid request never shifts or takes another request's result).
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np
import pydantic

from hps_server import log, metrics, occupancy, trace, wire
from hps_server.context import ServerContext
from hps_server.errors import RequestError

INPUT, OUTPUT = "input", "output"
# One log line per execution batch (model, requests, time, their logIds); HPS_LOG_REQUESTS=0 turns it off.
REQUEST_LOG = os.environ.get("HPS_LOG_REQUESTS", "1") != "0"
INTERNAL_ERROR = "internal server error; the server log has the details under this logId"


class TensorModel:
    """A python-backend model whose context is built for it; `execute` is the subclass's own."""

    context: ServerContext
    occupied = occupancy.IDLE  # which instances of the model are executing (hps_server.occupancy)

    def initialize(self, args: dict) -> None:
        self.context = ServerContext.from_triton_args(args)
        started = time.perf_counter()
        self.occupied = self.context.occupancy()
        self.setup(self.context)
        burst = f" ({self.context.burst_threads} when it runs alone)" if self.context.occupancy_allows_burst() else ""
        log.info(f"{self.context.model_name}: ready on {self.context.device} with "
                 f"{self.context.threads} thread(s){burst} in {time.perf_counter() - started:.1f} s")

    def setup(self, context: ServerContext) -> None:
        """Load models once per instance (override)."""

    def finalize(self) -> None:
        self.occupied.close()
        metrics.close()  # the last counts reach Triton before the process ends
        log.info(f"{self.context.model_name}: unloaded")


class JsonModel(TensorModel):
    """One JSON endpoint: `Request` validates a request body, `infer` answers a valid one."""

    Request: type[pydantic.BaseModel]

    def infer(self, request: Any) -> Any:
        """The `result` object for one valid request; raise RequestError for a 422."""
        raise NotImplementedError

    def infer_batch(self, requests: list[Any]) -> list[Any]:
        """Results (or exceptions) for valid requests, in order; override to batch the work."""
        results = []
        for request in requests:
            try:
                results.append(self.infer(request))
            except Exception as error:  # answered per request below
                results.append(error)
        return results

    def answer(self, documents: list[bytes]) -> list[bytes]:
        """Responses for raw request documents, position by position (the testable core of
        execute), each stage timed by the tracer (`trace`) and counted in `metrics`."""
        clock = trace.start()
        answers: list[bytes | None] = [None] * len(documents)
        valid: list[tuple[int, str, Any]] = []
        try:
            for position, raw in enumerate(documents):
                try:
                    with trace.stage("decode"):
                        log_id, request = wire.decode(raw, self.Request)
                    valid.append((position, log_id, request))
                except wire.WireError as error:
                    answers[position] = wire.failure(error.log_id, error.code, error.message)
            if valid:
                started = time.perf_counter()
                try:
                    with self.occupied:  # alone: the pipeline's predictors may use every CPU
                        results = self.infer_batch([request for _, _, request in valid])
                    if len(results) != len(valid):
                        raise RuntimeError(f"infer_batch returned {len(results)} results for {len(valid)} requests")
                except Exception as error:
                    results = [error] * len(valid)
                milliseconds = (time.perf_counter() - started) * 1000
                with trace.stage("encode"):
                    for (position, log_id, _), result in zip(valid, results):
                        answers[position] = self._envelope(log_id, result)
                if REQUEST_LOG:
                    log.info(f"{self.context.model_name}: {len(valid)} request(s) in {milliseconds:.1f} ms "
                             f"(logId {', '.join(log_id for _, log_id, _ in valid)})")
            metrics.observe_stages(self.context.model_name, clock.stages(), len(documents))
        finally:
            trace.stop()
        metrics.count(self.context.model_name, answers)
        return answers

    def _envelope(self, log_id: str, result: Any) -> bytes:
        if isinstance(result, RequestError):
            return wire.request_error(log_id, result)
        if isinstance(result, Exception):
            log.error(f"{self.context.model_name}: logId {log_id}: "
                      + "".join(traceback.format_exception(result)))
            return wire.failure(log_id, 500, INTERNAL_ERROR)
        try:
            return wire.success(log_id, result)
        except (TypeError, ValueError) as error:
            log.error(f"{self.context.model_name}: logId {log_id}: result not serialisable: {error}")
            return wire.failure(log_id, 500, INTERNAL_ERROR)

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        # A request may carry a batch of documents ([n, 1]): each is answered in its own slot.
        arrays = [pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy() for request in requests]
        documents = [bytes(item) for array in arrays for item in array.reshape(-1)]
        answers = iter(self.answer(documents))
        responses = []
        for array in arrays:
            output = np.array([next(answers) for _ in range(array.size)], dtype=np.object_).reshape(array.shape)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, output)]))
        return responses
