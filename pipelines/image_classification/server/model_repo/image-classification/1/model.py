"""Triton model `image-classification`: PaddleX 3.x image classification over JSON."""

from hps_server import JsonModel, ServerContext
from image_classification_pipeline import Request
from image_classification_pipeline.pipeline import Pipeline


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        self.pipeline = Pipeline(context)

    def infer(self, request: Request) -> dict:
        result = self.pipeline.infer_batch([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def infer_batch(self, requests: list[Request]) -> list:
        # Valid requests of a dynamic batch share one predictor run.
        return self.pipeline.infer_batch(requests)
