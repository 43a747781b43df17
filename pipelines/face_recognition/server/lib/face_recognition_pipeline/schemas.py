"""Request bodies of PaddleX 3.x's face recognition endpoints, and the pipeline's [settings]."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # dlib HOG upsampling: 0 finds faces from about 80 px, 1 from about 40 px (4x the time).
    upsample: int = Field(1, ge=0, le=2)
    # Detection runs on a copy shrunk to this long side (embeddings use the full image).
    max_side: int = Field(1024, ge=160, le=8192)
    # HOG SVM score; dlib's own default cut-off is 0.0.
    det_threshold: float = 0.0
    # Recognition score = 1 - euclidean distance; 0.4 is dlib's "same person below 0.6".
    rec_threshold: float = 0.4
    topk: int = Field(5, ge=1, le=100)
    # Whether infer returns the annotated image when a request does not say.
    visualize: bool = True


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageLabelPair(_Strict):
    image: str
    label: str = Field(min_length=1, max_length=256)


class BuildIndexRequest(_Strict):
    imageLabelPairs: list[ImageLabelPair]


class AddImagesToIndexRequest(_Strict):
    imageLabelPairs: list[ImageLabelPair] = Field(min_length=1)
    indexKey: str


class RemoveImagesFromIndexRequest(_Strict):
    ids: list[int] = Field(min_length=1)
    indexKey: str


class InferRequest(_Strict):
    image: str
    indexKey: str | None = None
    detThreshold: float | None = Field(None, ge=-5, le=5)  # HOG SVM score; dlib's cut-off is 0
    recThreshold: float | None = Field(None, ge=-1, le=1)  # 1 - euclidean distance
    hammingRadius: float | None = None  # accepted for PaddleX clients; the gallery is not binary
    topk: int | None = Field(None, ge=1, le=100)
    visualize: bool | None = None
