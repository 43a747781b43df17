"""Triton model `__MODEL__`: text recognition over JSON (a CTC recogniser: one text line in, its text out)."""

from hps_server import JsonModel, ServerContext
from text_recognition_pipeline import Request
from text_recognition_pipeline.pipeline import Pipeline


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        self.pipeline = Pipeline(context)

    def infer(self, request: Request) -> dict:
        return self.pipeline.infer(request)
