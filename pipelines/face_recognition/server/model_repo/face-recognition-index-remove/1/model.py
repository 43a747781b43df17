"""Triton model `face-recognition-index-remove`: drops images (by id) from a gallery index."""

from hps_server import JsonModel, ServerContext

from face_recognition_pipeline import RemoveImagesFromIndexRequest
from face_recognition_pipeline.pipeline import FacePipeline


class TritonPythonModel(JsonModel):
    Request = RemoveImagesFromIndexRequest

    def setup(self, context: ServerContext) -> None:
        # Removing needs no face models, only the index store.
        self.pipeline = FacePipeline(context, load_models=False)

    def infer(self, request: RemoveImagesFromIndexRequest) -> dict:
        return self.pipeline.remove(request)
