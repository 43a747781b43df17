"""The pipeline's [settings] (the model and its tensors) and the request body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DType = Literal["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


class TensorSpec(BaseModel):
    """One input or output of the model; -1 in `shape` takes any size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: DType
    shape: list[int]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str  # artifact name under <server root>/models/
    model_file: str  # inference.json (PIR) or inference.pdmodel
    params_file: str
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    # false keeps the graph as exported (some fusion passes change some models' answers), but
    # Paddle 3.3 cannot then build a predictor of a PIR (inference.json) model.
    ir_optim: bool = True
    max_elements: int = Field(1_000_000, ge=1)  # per input tensor of one request


class Request(BaseModel):
    """Every input of the model by name, as nested lists of numbers."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any]
