"""The OCR endpoint's request body (PaddleX 3.x field names) and the pipeline's [settings]."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LimitType = Literal["min", "max"]


class OCRSettings(BaseModel):
    """Server-wide defaults; a request's fields override them one by one."""

    model_config = ConfigDict(extra="forbid")

    text_det_limit_side_len: int = Field(960, ge=1, le=4096)
    text_det_limit_type: LimitType = "max"
    # Upper bound on the detector's input side whatever the limit type (memory guard).
    text_det_max_side_limit: int = Field(4000, ge=32, le=8192)
    text_det_thresh: float = Field(0.3, ge=0.0, le=1.0)
    text_det_box_thresh: float = Field(0.6, ge=0.0, le=1.0)
    text_det_unclip_ratio: float = Field(2.0, gt=0.0, le=10.0)
    text_rec_score_thresh: float = Field(0.0, ge=0.0, le=1.0)
    use_textline_orientation: bool = True
    textline_orientation_thresh: float = Field(0.9, ge=0.0, le=1.0)
    rec_batch_size: int = Field(6, ge=1, le=64)  # also the orientation classifier's batch
    visualize: bool = False


class OCRRequest(BaseModel):
    """PaddleX 3.x `/ocr` request: null means "the server's default"."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1)
    fileType: Literal[0, 1] | None = None
    useDocOrientationClassify: bool | None = None
    useDocUnwarping: bool | None = None
    useTextlineOrientation: bool | None = None
    textDetLimitSideLen: int | None = Field(None, ge=1, le=4096)
    textDetLimitType: LimitType | None = None
    textDetThresh: float | None = Field(None, ge=0.0, le=1.0)
    textDetBoxThresh: float | None = Field(None, ge=0.0, le=1.0)
    textDetUnclipRatio: float | None = Field(None, gt=0.0, le=10.0)
    textRecScoreThresh: float | None = Field(None, ge=0.0, le=1.0)
    visualize: bool | None = None


class OCRParams(BaseModel):
    """The effective parameters of one run (settings overridden by the request)."""

    limit_side_len: int
    limit_type: LimitType
    max_side_limit: int
    thresh: float
    box_thresh: float
    unclip_ratio: float
    rec_score_thresh: float
    use_textline_orientation: bool

    @classmethod
    def resolve(cls, settings: OCRSettings, request: OCRRequest | None = None) -> "OCRParams":
        def pick(field: str, default):
            value = getattr(request, field, None)  # also None when there is no request
            return default if value is None else value

        return cls(
            limit_side_len=pick("textDetLimitSideLen", settings.text_det_limit_side_len),
            limit_type=pick("textDetLimitType", settings.text_det_limit_type),
            max_side_limit=settings.text_det_max_side_limit,
            thresh=pick("textDetThresh", settings.text_det_thresh),
            box_thresh=pick("textDetBoxThresh", settings.text_det_box_thresh),
            unclip_ratio=pick("textDetUnclipRatio", settings.text_det_unclip_ratio),
            rec_score_thresh=pick("textRecScoreThresh", settings.text_rec_score_thresh),
            use_textline_orientation=pick("useTextlineOrientation", settings.use_textline_orientation),
        )
