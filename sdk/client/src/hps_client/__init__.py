"""Client of hpsforge Triton servers: one JSON document in, one JSON envelope out."""

from .client import Client
from .encoding import to_base64
from .errors import (
    HpsClientError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    TritonError,
    UnavailableError,
)
from .models import (
    Category,
    ClassificationResult,
    DataInfo,
    Envelope,
    Face,
    FaceResult,
    IndexResult,
    LexicalAnalysisResult,
    LexicalItem,
    OcrPage,
    OcrResult,
    PrunedResult,
    RecResult,
    parse_envelope,
)

__version__ = "0.1.0"

__all__ = [
    "Category",
    "ClassificationResult",
    "Client",
    "DataInfo",
    "Envelope",
    "Face",
    "FaceResult",
    "HpsClientError",
    "IndexResult",
    "LexicalAnalysisResult",
    "LexicalItem",
    "OcrPage",
    "OcrResult",
    "ProtocolError",
    "PrunedResult",
    "RecResult",
    "RequestTimeoutError",
    "ServerError",
    "TritonError",
    "UnavailableError",
    "parse_envelope",
    "to_base64",
]
