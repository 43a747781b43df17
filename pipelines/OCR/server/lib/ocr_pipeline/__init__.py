"""PP-OCRv4 text detection + recognition (+ 0/180 text-line orientation) with Paddle Inference."""

from ocr_pipeline.pipeline import OCRPipeline, draw
from ocr_pipeline.schema import OCRParams, OCRRequest, OCRSettings

__all__ = ["OCRParams", "OCRPipeline", "OCRRequest", "OCRSettings", "draw"]
