"""Triton model `__MODEL__`: image classification over JSON (PaddleX 3.x image-classification schema)."""

from hps_server import JsonModel, ServerContext
from image_classification_pipeline import Request
from image_classification_pipeline.pipeline import Pipeline


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        self.pipeline = Pipeline(context)

    def infer_batch(self, requests: list[Request]) -> list:
        # Each request is decoded and prepared on its own; the prepared ones share one predictor run.
        return self.pipeline.infer_batch(requests)
