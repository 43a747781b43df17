"""hps_server: the runtime every pipeline's model.py builds on.

It owns what is the same for every endpoint: the wire format (one BYTES JSON input `input`, one
BYTES JSON output `output`, PaddleX's result envelope), request decoding and validation, log ids,
timing logs, thread settings, image decoding (URLs only from an allow-list) and per-request answers
inside a dynamic batch. A pipeline supplies a pydantic Request model and an `infer` method.
"""

from hps_server.context import ServerContext
from hps_server.engines import EngineError, Predictor
from hps_server.errors import RequestError
from hps_server.models import JsonModel, TensorModel
from hps_server.predictor import paddle_predictor

__all__ = ["EngineError", "JsonModel", "Predictor", "RequestError", "ServerContext", "TensorModel", "paddle_predictor"]
