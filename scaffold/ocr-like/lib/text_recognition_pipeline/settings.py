"""The pipeline's [settings] (the model, its dictionary, the line height) and the request body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str  # artifact name under <server root>/models/
    model_file: str
    params_file: str
    dictionary: str  # the dictionary's artifact name under <server root>/models/
    dictionary_file: str  # one character a line
    # PaddleOCR's convention: class 0 is the CTC blank, then the dictionary's characters, then a
    # space when the model was trained with use_space_char (C = characters + 2, else + 1).
    use_space_char: bool
    classes: PositiveInt  # C, checked against the dictionary when the model loads
    input_height: int = Field(ge=1)  # 32 or 48
    input_width: PositiveInt | None = None  # a model of fixed width; else the line's own aspect
    min_width: PositiveInt = 320  # narrower lines are padded to it (the width the model was trained at)
    max_width: PositiveInt = 3200  # wider lines are squeezed to it

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.min_width > self.max_width:
            raise ValueError("min_width must not exceed max_width")
        return self


class Request(BaseModel):
    """One text-line image."""

    model_config = ConfigDict(extra="forbid")

    image: str  # base64 image file, or a URL from an allow-listed origin
