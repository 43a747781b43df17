"""The pipeline's [settings] (which classifier, how to feed it) and the request body."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Triple = tuple[float, float, float]


class Settings(BaseModel):
    """Defaults describe the shipped model: PP-OCR's v2.0 mobile text-line orientation classifier."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = "textline_orientation"  # artifact name under <server root>/models/
    model_file: str = "inference.pdmodel"
    params_file: str = "inference.pdiparams"
    labels: list[str] = ["0", "180"]  # class names by output index
    labels_file: str | None = None  # or: one name a line, a file in the model's directory
    # "pad": resize to the input height keeping the aspect ratio, pad right to the input width
    # (PP-OCR text lines); "resize_crop": resize the short side, then centre-crop (ImageNet).
    preprocess: Literal["pad", "resize_crop"] = "pad"
    input_size: tuple[PositiveInt, PositiveInt] = (48, 192)  # height, width fed to the model
    resize_short: PositiveInt = 256  # resize_crop only
    channels: Literal["bgr", "rgb"] = "bgr"  # PP-OCR models take BGR, PaddleClas ones RGB
    scale: float = 1 / 255
    mean: Triple = (0.5, 0.5, 0.5)
    std: Triple = (0.5, 0.5, 0.5)
    softmax: bool = False  # apply softmax to the output (for models exported without one)
    topk: PositiveInt = 5  # when the request gives none
    visualize: bool = False  # when the request gives none

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if any(value == 0 for value in self.std):
            raise ValueError("std must not contain 0")
        if self.preprocess == "resize_crop" and self.resize_short < max(self.input_size):
            raise ValueError("resize_short must be at least the crop size (input_size)")
        return self


class Request(BaseModel):
    """PaddleX 3.x image-classification request."""

    model_config = ConfigDict(extra="forbid")

    image: str  # base64 image file, or a URL from an allow-listed origin
    topk: int | None = Field(None, ge=1)  # more than the number of classes means all of them
    visualize: bool | None = None  # return an annotated JPEG in result.image
