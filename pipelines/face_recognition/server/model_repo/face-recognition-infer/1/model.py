"""Triton model `face-recognition-infer`: detects faces and names them from a gallery index."""

from hps_server import JsonModel, ServerContext

from face_recognition_pipeline import InferRequest
from face_recognition_pipeline.pipeline import FacePipeline


class TritonPythonModel(JsonModel):
    Request = InferRequest

    def setup(self, context: ServerContext) -> None:
        self.pipeline = FacePipeline(context)

    def infer(self, request: InferRequest) -> dict:
        return self.pipeline.infer(request)
