"""The pipeline's [settings] (the model, its tensors, how images are fed) and the request body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Triple = tuple[float, float, float]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str  # artifact name under <server root>/models/
    model_file: str
    params_file: str
    # The tensors by name, as Paddle reports them (PaddleDetection's export convention).
    image_input: str = "image"
    im_shape_input: str = "im_shape"
    scale_factor_input: str = "scale_factor"
    boxes_output: str  # [M, 6]: class, score, x1, y1, x2, y2 (in the original image's pixels)
    counts_output: str  # [N]: how many of the M rows belong to each image
    labels: list[str] = []  # class names by class id (a class without one is named by its number)
    input_size: tuple[PositiveInt, PositiveInt]  # height, width the image is resized to
    channels: str = Field("rgb", pattern="^(rgb|bgr)$")
    scale: float = 1 / 255
    mean: Triple = (0.485, 0.456, 0.406)
    std: Triple = (0.229, 0.224, 0.225)
    threshold: float = Field(0.5, ge=0, le=1)  # lowest score kept, when the request gives none

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if any(value == 0 for value in self.std):
            raise ValueError("std must not contain 0")
        return self


class Request(BaseModel):
    """PaddleX 3.x object-detection request."""

    model_config = ConfigDict(extra="forbid")

    image: str  # base64 image file, or a URL from an allow-listed origin
    threshold: float | None = Field(None, ge=0, le=1)
