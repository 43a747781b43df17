"""Triton model `__MODEL__`: object detection over JSON (a PaddleDetection export: boxes, classes, scores)."""

from detection_pipeline import Request
from detection_pipeline.pipeline import Pipeline
from hps_server import JsonModel, ServerContext


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        self.pipeline = Pipeline(context)

    def infer(self, request: Request) -> dict:
        return self.pipeline.infer(request)
