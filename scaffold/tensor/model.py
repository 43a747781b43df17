"""Triton model `__MODEL__`: named tensors in, named tensors out, over JSON (hps_server's wire)."""

from hps_server import JsonModel, ServerContext
from tensor_pipeline import Request
from tensor_pipeline.pipeline import Pipeline


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        self.pipeline = Pipeline(context)

    def infer(self, request: Request) -> dict:
        return self.pipeline.infer(request)
