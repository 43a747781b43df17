"""The wire format: a compact UTF-8 JSON request in, PaddleX's envelope out.

Every check here answers with errorCode 422 and a message that names the problem; nothing a client
sends can raise past `decode`.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pydantic

from hps_server.errors import RequestError

MAX_REQUEST_BYTES = int(os.environ.get("HPS_MAX_REQUEST_BYTES", str(16 * 1024 * 1024)))
MAX_LOG_ID_CHARS = 128


class WireError(Exception):
    """A request that cannot be decoded: answered with an error envelope, never raised to Triton."""

    def __init__(self, log_id: str, code: int, message: str):
        super().__init__(message)
        self.log_id, self.code, self.message = log_id, code, message


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str):
    # Python's json reads NaN and Infinity, which JSON does not have (and NaN defeats every threshold).
    raise _NotJson(f"{name} is not a JSON value")


def new_log_id() -> str:
    return uuid.uuid4().hex


def _describe(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "request"
        parts.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(parts)


def parse_json(raw: bytes) -> tuple[str, dict]:
    """(log id, JSON object) of a raw request; WireError for anything that is not one."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise WireError(new_log_id(), 422, f"request is {len(raw)} bytes, over the limit of {MAX_REQUEST_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError(new_log_id(), 422, f"request is not valid UTF-8 (byte {error.start})") from None
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except _NotJson as error:
        raise WireError(new_log_id(), 422, f"request is not valid JSON: {error}") from None
    except RecursionError:
        raise WireError(new_log_id(), 422, "request JSON is nested too deeply") from None
    except ValueError as error:
        raise WireError(new_log_id(), 422, f"request is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise WireError(new_log_id(), 422, f"request must be a JSON object, not {type(body).__name__}")
    log_id = body.pop("logId", None)
    if log_id is None:
        log_id = new_log_id()
    elif not isinstance(log_id, str) or not 0 < len(log_id) <= MAX_LOG_ID_CHARS or not log_id.isprintable() \
            or not _encodable(log_id):
        raise WireError(new_log_id(), 422, f"logId must be a string of 1 to {MAX_LOG_ID_CHARS} printable characters")
    return log_id, body


def decode(raw: bytes, request_model: type[pydantic.BaseModel]) -> tuple[str, Any]:
    """(log id, validated request) of a raw request; WireError (422) when it is not valid."""
    log_id, body = parse_json(raw)
    try:
        return log_id, request_model.model_validate(body)
    except pydantic.ValidationError as error:
        raise WireError(log_id, 422, _describe(error)) from None
    except RecursionError:
        raise WireError(log_id, 422, "request JSON is nested too deeply") from None


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays inside a result, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates ("\ud800") are valid JSON but not UTF-8
        return False
    return True


def _dump(document: dict) -> bytes:
    """Compact UTF-8 JSON; NaN and infinity are refused (they are not JSON)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_jsonable, allow_nan=False)
    if not _encodable(text):
        text = json.dumps(document, separators=(",", ":"), default=_jsonable, allow_nan=False)
    return text.encode("utf-8")


def success(log_id: str, result: Any) -> bytes:
    if isinstance(result, pydantic.BaseModel):
        result = result.model_dump(mode="json", by_alias=True)
    return _dump({"logId": log_id, "errorCode": 0, "errorMsg": "Success", "result": result})


def failure(log_id: str, code: int, message: str) -> bytes:
    return _dump({"logId": log_id, "errorCode": code, "errorMsg": message})


def request_error(log_id: str, error: RequestError) -> bytes:
    return failure(log_id, error.code, str(error) or "request cannot be served")
