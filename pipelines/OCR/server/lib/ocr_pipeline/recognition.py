"""Text-line crops, the 0/180 orientation classifier's input, CRNN input and CTC decoding."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

REC_HEIGHT = 48
REC_MIN_WIDTH = 320  # the width the recogniser was trained at: narrower batches are padded to it
CLS_SHAPE = (48, 192)  # (h, w) of the orientation classifier's input
CLS_LABELS = ("0", "180")


def crop_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad warped to an upright rectangle; tall results are turned to lie horizontally."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.rot90(crop)  # probably vertical text read top-down
    return crop


def _resize_pad(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping aspect (capped at `width`), scale to [-1, 1], zero-pad right: 3 x h x w."""
    h, w = crop.shape[:2]
    new_w = min(width, int(math.ceil(height * w / h)))
    resized = cv2.resize(crop, (max(new_w, 1), height)).astype(np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized.shape[1]] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def cls_batch(crops: list[np.ndarray]) -> np.ndarray:
    return np.stack([_resize_pad(c, *CLS_SHAPE) for c in crops])


def rec_batch(crops: list[np.ndarray]) -> np.ndarray:
    """One batch padded to its widest aspect ratio (at least the trained 320 / 48)."""
    ratio = max([REC_MIN_WIDTH / REC_HEIGHT] + [c.shape[1] / c.shape[0] for c in crops])
    width = int(REC_HEIGHT * ratio)
    return np.stack([_resize_pad(c, REC_HEIGHT, width) for c in crops])


def load_charset(path: Path) -> list[str]:
    """CTC classes: blank, the dictionary's characters, then space (the model uses the space char)."""
    with open(path, encoding="utf-8") as stream:
        chars = [line.rstrip("\r\n") for line in stream]
    return ["<blank>"] + chars + [" "]


def ctc_decode(probs: np.ndarray, charset: list[str]) -> list[tuple[str, float]]:
    """Greedy CTC over N x T x C softmax outputs: merge repeats, drop blanks; score = mean prob."""
    best = probs.argmax(axis=2)
    conf = probs.max(axis=2)
    results = []
    for ids, scores in zip(best, conf):
        keep = ids != 0
        keep[1:] &= ids[1:] != ids[:-1]
        text = "".join(charset[i] for i in ids[keep])
        results.append((text, float(scores[keep].mean()) if keep.any() else 0.0))
    return results
