"""Face recognition with dlib (HOG detector, 128-d ResNet embeddings) and a persistent gallery."""

from face_recognition_pipeline.schemas import (AddImagesToIndexRequest, BuildIndexRequest, FaceSettings,
                                               InferRequest, RemoveImagesFromIndexRequest)

__all__ = ["AddImagesToIndexRequest", "BuildIndexRequest", "FaceSettings", "InferRequest",
           "RemoveImagesFromIndexRequest"]
