"""The response envelope and the typed results of each pipeline.

Every model allows extra fields so that a newer server can add some without breaking clients.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .errors import ProtocolError, ServerError

# Keeps integers (pixel coordinates) as integers when a result is dumped again.
Number = Union[int, float]


class _Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class Envelope(_Wire):
    log_id: Optional[str] = None
    error_code: int = 0
    error_msg: str = "Success"
    result: Dict[str, Any] = Field(default_factory=dict)


def parse_envelope(raw: Union[bytes, str], log_id: Optional[str] = None) -> Envelope:
    """Parse one `output` element; raise ServerError for an error envelope.

    log_id is the id the client sent, used when the server's envelope lacks one.
    """
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"response is not UTF-8: {exc}") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"response is not JSON: {exc}: {raw[:200]!r}") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"response is not a JSON object: {raw[:200]!r}")
    code = doc.get("errorCode")
    # bool is an int subclass; true/false is not an error code.
    if not isinstance(code, int) or isinstance(code, bool):
        raise ProtocolError(f"response has no integer errorCode: {raw[:200]!r}")
    server_log_id = doc.get("logId")
    if not isinstance(server_log_id, str):
        server_log_id = log_id
    if code != 0:
        message = doc.get("errorMsg")
        raise ServerError(code, message if isinstance(message, str) else "(no errorMsg)", server_log_id)
    if not isinstance(doc.get("result"), dict):
        raise ProtocolError(f"success response without a result object: {raw[:200]!r}")
    doc["logId"] = server_log_id
    return Envelope.model_validate(doc)


# --- OCR (model `ocr`) ---------------------------------------------------------------------


class PrunedResult(BaseModel):
    # These names are snake_case on the wire too.
    model_config = ConfigDict(extra="allow")

    rec_texts: List[str] = Field(default_factory=list)
    rec_scores: List[float] = Field(default_factory=list)
    rec_polys: List[List[List[Number]]] = Field(default_factory=list)
    rec_boxes: List[List[Number]] = Field(default_factory=list)


class OcrPage(_Wire):
    pruned_result: PrunedResult
    ocr_image: Optional[str] = None


class DataInfo(_Wire):
    width: Optional[int] = None
    height: Optional[int] = None
    type: Optional[str] = None


class OcrResult(_Wire):
    ocr_results: List[OcrPage]
    data_info: Optional[DataInfo] = None

    @property
    def texts(self) -> List[str]:
        """All recognized lines, page after page."""
        return [t for page in self.ocr_results for t in page.pruned_result.rec_texts]


# --- image classification (model `image-classification`) -------------------------------------


class Category(_Wire):
    id: int
    name: str
    score: float


class ClassificationResult(_Wire):
    categories: List[Category]
    image: Optional[str] = None


# --- lexical analysis (model `lexical-analysis`) ----------------------------------------------


class LexicalItem(_Wire):
    text: str
    words: List[str]
    tags: List[str]


class LexicalAnalysisResult(_Wire):
    results: List[LexicalItem]


# --- face recognition (models `face-recognition-*`) -------------------------------------------


class IndexResult(_Wire):
    """Answer of index build (with index_key) and of index add/remove (image_count only)."""

    index_key: Optional[str] = None
    image_count: int


class RecResult(_Wire):
    label: str
    score: float


class Face(_Wire):
    bbox: List[Number]
    rec_results: List[RecResult] = Field(default_factory=list)
    score: float


class FaceResult(_Wire):
    faces: List[Face]
    image: Optional[str] = None
