"""The tensor endpoint: each request's tensors checked against the model's inputs, one predictor
run per request (shapes may differ between requests), every output returned by name."""

from __future__ import annotations

import math

import numpy as np
from hps_server import RequestError, ServerContext, paddle_predictor

from tensor_pipeline.settings import Request, Settings, TensorSpec


def _fits(shape: tuple[int, ...], declared: list[int]) -> bool:
    return len(shape) == len(declared) and all(want in (-1, got) for got, want in zip(shape, declared, strict=True))


class Pipeline:
    def __init__(self, context: ServerContext):
        self.settings = settings = context.settings_as(Settings)
        model_dir = context.model_dir(settings.model)
        self.predictor = paddle_predictor(
            model_dir / settings.model_file, model_dir / settings.params_file, context, ir_optim=settings.ir_optim
        )
        self.inputs = {spec.name: self.predictor.get_input_handle(spec.name) for spec in settings.inputs}
        self.outputs = {spec.name: self.predictor.get_output_handle(spec.name) for spec in settings.outputs}

    def _tensor(self, spec: TensorSpec, value: object) -> np.ndarray:
        try:
            array = np.asarray(value, dtype=spec.dtype)
        except (TypeError, ValueError, OverflowError) as error:
            raise RequestError(f"inputs.{spec.name}: not a {spec.dtype} tensor ({error})") from None
        if array.size > self.settings.max_elements:
            raise RequestError(
                f"inputs.{spec.name}: {array.size} elements, over the limit of {self.settings.max_elements}"
            )
        if not _fits(array.shape, spec.shape):
            raise RequestError(
                f"inputs.{spec.name}: shape {list(array.shape)} does not fit the model's {spec.shape} (-1: any size)"
            )
        return array

    def infer(self, request: Request) -> dict:
        names = [spec.name for spec in self.settings.inputs]
        if missing := [name for name in names if name not in request.inputs]:
            raise RequestError(f"inputs: missing {', '.join(missing)} (the model takes {', '.join(names)})")
        if unknown := sorted(set(request.inputs) - set(names)):
            raise RequestError(f"inputs: unknown {', '.join(unknown)} (the model takes {', '.join(names)})")
        for spec in self.settings.inputs:
            array = self._tensor(spec, request.inputs[spec.name])
            handle = self.inputs[spec.name]
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        outputs = []
        for spec in self.settings.outputs:
            array = self.outputs[spec.name].copy_to_cpu()
            data = array.tolist()
            if array.dtype.kind == "f" and not all(math.isfinite(x) for x in array.reshape(-1).tolist()):
                raise ValueError(f"output {spec.name} holds NaN or infinity")
            outputs.append({"name": spec.name, "dtype": str(array.dtype), "shape": list(array.shape), "data": data})
        return {"outputs": outputs}
