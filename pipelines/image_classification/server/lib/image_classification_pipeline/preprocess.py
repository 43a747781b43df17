"""BGR uint8 image -> normalised CHW float32 tensor of the model's input size."""

from __future__ import annotations

import math

import cv2
import numpy as np

from image_classification_pipeline.settings import Settings


def _normalise(image: np.ndarray, settings: Settings) -> np.ndarray:
    if settings.channels == "rgb":
        image = image[:, :, ::-1]
    mean = np.asarray(settings.mean, dtype=np.float32)
    std = np.asarray(settings.std, dtype=np.float32)
    x = (image.astype(np.float32) * np.float32(settings.scale) - mean) / std
    return x.transpose(2, 0, 1)


def pad(image: np.ndarray, settings: Settings) -> np.ndarray:
    """PP-OCR text-line input: height fixed, width by aspect ratio (at most the input width),
    zeros (after normalisation) to the right."""
    height, width = settings.input_size
    h, w = image.shape[:2]
    resized_width = max(1, min(width, math.ceil(height * w / h)))
    resized = cv2.resize(image, (resized_width, height))
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_width] = _normalise(resized, settings)
    return out


def resize_crop(image: np.ndarray, settings: Settings) -> np.ndarray:
    """ImageNet input: short side to resize_short, then the centre input_size crop."""
    height, width = settings.input_size
    h, w = image.shape[:2]
    ratio = settings.resize_short / min(h, w)
    h, w = max(height, round(h * ratio)), max(width, round(w * ratio))
    resized = cv2.resize(image, (w, h))
    top, left = (h - height) // 2, (w - width) // 2
    return _normalise(resized[top:top + height, left:left + width], settings)


def preprocess(image: np.ndarray, settings: Settings) -> np.ndarray:
    return pad(image, settings) if settings.preprocess == "pad" else resize_crop(image, settings)
