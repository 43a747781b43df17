"""Client of hpsforge servers: JSON requests in a BYTES tensor, over Triton HTTP or gRPC."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np
from pydantic import BaseModel, ValidationError
from tritonclient.utils import InferenceServerException

from .encoding import ImageInput, to_base64
from .errors import HpsClientError, ProtocolError, RequestTimeoutError, TritonError, UnavailableError
from .models import (
    ClassificationResult,
    Envelope,
    FaceResult,
    IndexResult,
    LexicalAnalysisResult,
    OcrResult,
    parse_envelope,
)
from .ready import wait_until

try:  # the server closed the connection without answering (a reset, in effect)
    from geventhttpclient.response import HTTPConnectionClosed as _ConnectionClosed
except ImportError:  # pragma: no cover - geventhttpclient layout differs between versions
    _ConnectionClosed = ConnectionResetError

T = TypeVar("T", bound=BaseModel)
ImageLabelPairs = Iterable[Union[Tuple[ImageInput, str], Mapping[str, Any]]]

_RETRY_HTTP_STATUS = {"502", "503", "504"}
_CONNECTION_LOST = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    _ConnectionClosed,
)
# gRPC status -> HTTP status, so that TritonError.error_code means the same for both protocols.
_GRPC_TO_HTTP = {
    "StatusCode.INVALID_ARGUMENT": 400,
    "StatusCode.FAILED_PRECONDITION": 400,
    "StatusCode.OUT_OF_RANGE": 400,
    "StatusCode.UNAUTHENTICATED": 401,
    "StatusCode.PERMISSION_DENIED": 403,
    "StatusCode.NOT_FOUND": 404,
    "StatusCode.ALREADY_EXISTS": 409,
    "StatusCode.RESOURCE_EXHAUSTED": 429,
    "StatusCode.CANCELLED": 499,
    "StatusCode.UNIMPLEMENTED": 501,
}


class _Retry(Exception):
    """Internal: a failure worth another attempt."""

    def __init__(self, message: str):
        super().__init__(message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """snake_case keyword options -> camelCase request fields; None means "server default"."""
    return {_camel(k): v for k, v in options.items() if v is not None}


class Client:
    """One connection to an hpsforge server.

    url is host:port (a leading http:// is accepted); protocol is "http" (port 8000 by default
    on the server) or "grpc" (8001). Failed connections and HTTP 502/503/504 / gRPC UNAVAILABLE
    are retried `retries` times, waiting backoff, 2*backoff, 4*backoff... seconds in between.
    """

    def __init__(
        self,
        url: str,
        protocol: str = "http",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be 'http' or 'grpc', not {protocol!r}")
        for scheme in ("http://", "grpc://"):
            if url.startswith(scheme):
                url = url[len(scheme) :]
        if "://" in url:
            raise ValueError(f"unsupported URL scheme in {url!r}: give host:port")
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        if protocol == "http":
            import tritonclient.http as triton

            self._triton_module = triton
            self._triton = triton.InferenceServerClient(
                self.url, connection_timeout=self.timeout, network_timeout=self.timeout
            )
        else:
            import tritonclient.grpc as triton

            self._triton_module = triton
            self._triton = triton.InferenceServerClient(self.url)
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._triton.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, protocol={self.protocol!r})"

    # --- health ------------------------------------------------------------------------------

    def is_ready(self, model: Optional[str] = None) -> bool:
        """True when the server (and `model`, if given) is ready; False if unreachable."""
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            if model is None:
                return bool(self._triton.is_server_ready(**kwargs))
            return bool(self._triton.is_model_ready(model, **kwargs))
        except Exception as exc:
            if self._translate(exc, None) is None:
                raise
            return False

    def wait_ready(self, timeout: float = 60.0, model: Optional[str] = None, interval: float = 0.5) -> None:
        """Poll readiness until ready; raise UnavailableError (NotReadyError) after `timeout` seconds."""
        what = f"model {model!r} on {self.url}" if model else self.url
        wait_until(lambda: self.is_ready(model), timeout, interval, what=what)

    # --- inference ---------------------------------------------------------------------------

    def infer(self, model: str, payload: Mapping[str, Any], log_id: Optional[str] = None) -> Envelope:
        """Send one JSON request to `model`; return the success envelope.

        The request's log id is `log_id`, else payload["logId"], else a new uuid4 hex; it is sent
        as "logId" so that server logs and errors can be matched with the client's.
        """
        if not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a mapping, got {type(payload).__name__}")
        body = dict(payload)
        if log_id is None:
            log_id = body.get("logId") or uuid.uuid4().hex
        body["logId"] = log_id
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        raw = self._with_retries(lambda: self._infer_raw(model, data, str(log_id)), log_id)
        return parse_envelope(raw, log_id)

    def _infer_raw(self, model: str, data: bytes, log_id: str) -> Union[bytes, str]:
        triton = self._triton_module
        tensor = np.array([[data]], dtype=np.object_)
        inp = triton.InferInput("input", [1, 1], "BYTES")
        if self.protocol == "http":
            inp.set_data_from_numpy(tensor, binary_data=True)
            out = triton.InferRequestedOutput("output", binary_data=True)
            result = self._triton.infer(model, [inp], outputs=[out], request_id=log_id)
        else:
            inp.set_data_from_numpy(tensor)
            out = triton.InferRequestedOutput("output")
            result = self._triton.infer(model, [inp], outputs=[out], request_id=log_id, client_timeout=self.timeout)
        array = result.as_numpy("output")
        if array is None or array.size == 0:
            raise ProtocolError(f"model {model!r} returned no 'output' tensor")
        value = array.reshape(-1)[0]
        if not isinstance(value, (bytes, str)):
            raise ProtocolError(f"model {model!r} returned a non-BYTES output ({array.dtype})")
        return value

    def _with_retries(self, call: Callable[[], Any], log_id: Optional[str]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except HpsClientError:
                raise
            except Exception as exc:
                translated = self._translate(exc, log_id)
                if translated is None:
                    raise
                if not isinstance(translated, _Retry):
                    raise translated from exc
                if attempt > self.retries:
                    raise UnavailableError(
                        f"{self.url} unavailable after {attempt} attempt(s): {translated}", attempt
                    ) from exc
                time.sleep(self.backoff * 2 ** (attempt - 1))

    def _translate(self, exc: BaseException, log_id: Optional[str]) -> Optional[Exception]:
        """Map a transport exception to _Retry or a client error; None if it is not one."""
        if isinstance(exc, InferenceServerException):
            status = str(exc.status() or "")
            message = exc.message() or str(exc)
            if status in _RETRY_HTTP_STATUS or status == "StatusCode.UNAVAILABLE":
                return _Retry(f"{status}: {message}")
            if status == "StatusCode.DEADLINE_EXCEEDED":
                return RequestTimeoutError(f"no answer from {self.url} within {self.timeout:g}s")
            if status.isdigit():
                return TritonError(int(status), message, log_id)
            if status.startswith("StatusCode."):
                return TritonError(_GRPC_TO_HTTP.get(status, 500), message, log_id)
            return ProtocolError(f"Triton client error: {message}")
        if isinstance(exc, _CONNECTION_LOST):
            return _Retry(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return RequestTimeoutError(f"no answer from {self.url} within {self.timeout:g}s")
        if isinstance(exc, OSError):  # DNS failure, unreachable network...
            return UnavailableError(f"cannot reach {self.url}: {exc}")
        if isinstance(exc, ValueError):  # e.g. a 200 answer whose body is not Triton's JSON
            return ProtocolError(f"malformed answer from {self.url}: {exc}")
        return None

    def _typed(self, model: str, payload: Mapping[str, Any], result_type: Type[T], log_id: Optional[str]) -> T:
        envelope = self.infer(model, payload, log_id)
        try:
            return result_type.model_validate(envelope.result)
        except ValidationError as exc:
            raise ProtocolError(f"unexpected result from {model!r} (logId {envelope.log_id}): {exc}") from None

    # --- pipelines ---------------------------------------------------------------------------

    def ocr(self, file: ImageInput, *, log_id: Optional[str] = None, **options: Any) -> OcrResult:
        """OCR of one image. options (snake_case or camelCase): text_det_limit_side_len,
        text_det_limit_type, text_det_thresh, text_det_box_thresh, text_det_unclip_ratio,
        text_rec_score_thresh, use_textline_orientation, visualize..."""
        payload = {"file": to_base64(file), "fileType": 1}
        payload.update(_options(options))
        return self._typed("ocr", payload, OcrResult, log_id)

    def classify(
        self, image: ImageInput, topk: Optional[int] = None, *, log_id: Optional[str] = None, **options: Any
    ) -> ClassificationResult:
        payload = {"image": to_base64(image), **_options({"topk": topk, **options})}
        return self._typed("image-classification", payload, ClassificationResult, log_id)

    def lexical_analysis(
        self, texts: Union[str, Sequence[str]], *, log_id: Optional[str] = None
    ) -> LexicalAnalysisResult:
        items = [texts] if isinstance(texts, str) else list(texts)
        return self._typed("lexical-analysis", {"texts": items}, LexicalAnalysisResult, log_id)

    def build_index(self, pairs: ImageLabelPairs, *, log_id: Optional[str] = None) -> IndexResult:
        """Create a face index from (image, label) pairs; the result carries its index_key."""
        payload = {"imageLabelPairs": _pairs(pairs)}
        return self._typed("face-recognition-index-build", payload, IndexResult, log_id)

    def add_to_index(self, pairs: ImageLabelPairs, index_key: str, *, log_id: Optional[str] = None) -> IndexResult:
        payload = {"imageLabelPairs": _pairs(pairs), "indexKey": index_key}
        return self._typed("face-recognition-index-add", payload, IndexResult, log_id)

    def remove_from_index(self, ids: Iterable[int], index_key: str, *, log_id: Optional[str] = None) -> IndexResult:
        payload = {"ids": [int(i) for i in ids], "indexKey": index_key}
        return self._typed("face-recognition-index-remove", payload, IndexResult, log_id)

    def recognize(
        self, image: ImageInput, index_key: Optional[str] = None, *, log_id: Optional[str] = None, **options: Any
    ) -> FaceResult:
        """Detect and identify faces. options: det_threshold, rec_threshold, hamming_radius,
        topk, visualize (snake_case or camelCase)."""
        payload = {"image": to_base64(image), **_options({"index_key": index_key, **options})}
        return self._typed("face-recognition-infer", payload, FaceResult, log_id)


def _pairs(pairs: ImageLabelPairs) -> List[Dict[str, str]]:
    out = []
    for pair in pairs:
        if isinstance(pair, Mapping):
            image, label = pair["image"], pair["label"]
        else:
            image, label = pair
        out.append({"image": to_base64(image), "label": str(label)})
    return out
