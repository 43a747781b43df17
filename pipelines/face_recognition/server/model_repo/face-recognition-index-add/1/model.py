"""Triton model `face-recognition-index-add`: appends image-label pairs to a gallery index."""

from hps_server import JsonModel, ServerContext

from face_recognition_pipeline import AddImagesToIndexRequest
from face_recognition_pipeline.pipeline import FacePipeline


class TritonPythonModel(JsonModel):
    Request = AddImagesToIndexRequest

    def setup(self, context: ServerContext) -> None:
        self.pipeline = FacePipeline(context)

    def infer(self, request: AddImagesToIndexRequest) -> dict:
        return self.pipeline.add(request)
