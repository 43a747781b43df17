"""Triton model `face-recognition-index-build`: a new gallery index from image-label pairs."""

from hps_server import JsonModel, ServerContext

from face_recognition_pipeline import BuildIndexRequest
from face_recognition_pipeline.pipeline import FacePipeline


class TritonPythonModel(JsonModel):
    Request = BuildIndexRequest

    def setup(self, context: ServerContext) -> None:
        self.pipeline = FacePipeline(context)

    def infer(self, request: BuildIndexRequest) -> dict:
        return self.pipeline.build(request)
