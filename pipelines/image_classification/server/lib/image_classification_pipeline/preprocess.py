"""BGR uint8 image -> normalised CHW float32 tensor of the model's input size."""

from __future__ import annotations

import math

import cv2
import numpy as np

from image_classification_pipeline.settings import Settings


# resize_crop: the longest the long side may get once the short side is scaled to resize_short
# (16:1 at the default 256). A longer one would only be cropped away, after an allocation that
# grows with the aspect ratio (a 1x60000 image would resize to 256x15360000 pixels).
MAX_RESIZED_SIDE = 4096


class UnsupportedImage(ValueError):
    """An image this preprocessing cannot take; the message says why, in the client's terms."""


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
    long_side = round(max(h, w) * ratio)
    if long_side > MAX_RESIZED_SIDE:
        raise UnsupportedImage(
            f"{w}x{h} pixels is too elongated for this model: scaling its short side to "
            f"{settings.resize_short} pixels would make the long side {long_side}, over the limit of "
            f"{MAX_RESIZED_SIDE} (an aspect ratio of at most "
            f"{MAX_RESIZED_SIDE / settings.resize_short:g}:1 is accepted)")
    h, w = max(height, round(h * ratio)), max(width, round(w * ratio))
    resized = cv2.resize(image, (w, h))
    top, left = (h - height) // 2, (w - width) // 2
    return _normalise(resized[top:top + height, left:left + width], settings)


def preprocess(image: np.ndarray, settings: Settings) -> np.ndarray:
    """The model input of one image; UnsupportedImage when the settings' preprocessing cannot take it."""
    return pad(image, settings) if settings.preprocess == "pad" else resize_crop(image, settings)
