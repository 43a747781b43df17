"""DB text detection: resize + normalise for the network, then probability map -> quadrilaterals."""

from __future__ import annotations

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MAX_CANDIDATES = 1000
MIN_SIZE = 3


def det_input_size(height: int, width: int, limit_side_len: int, limit_type: str,
                   max_side_limit: int) -> tuple[int, int]:
    """(h, w) the detector sees: scaled by the side limit, then rounded to multiples of 32."""
    if limit_type == "max":
        side = max(height, width)
        ratio = limit_side_len / side if side > limit_side_len else 1.0
    else:
        side = min(height, width)
        ratio = limit_side_len / side if side < limit_side_len else 1.0
    h, w = height * ratio, width * ratio
    if max(h, w) > max_side_limit:
        shrink = max_side_limit / max(h, w)
        h, w = h * shrink, w * shrink
    # The network downsamples by 32; never below one cell.
    return max(int(round(h / 32) * 32), 32), max(int(round(w / 32) * 32), 32)


def preprocess(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 HxWx3 -> 1x3xhxw float32, ImageNet mean/std applied in BGR channel order."""
    h, w = size
    resized = cv2.resize(image, (w, h)).astype(np.float32) / 255.0
    resized = (resized - MEAN) / STD
    return resized.transpose(2, 0, 1)[None].copy()


def order_quad(points: np.ndarray) -> np.ndarray:
    """4x2 points as top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1], kind="stable")]
    tr, br = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def _min_quad(points: np.ndarray) -> tuple[np.ndarray, float]:
    rect = cv2.minAreaRect(points.reshape(-1, 2).astype(np.float32))
    return order_quad(cv2.boxPoints(rect)), min(rect[1])


def _quad_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the quad (over its bounding box, masked)."""
    h, w = prob.shape
    x0, x1 = (np.clip([np.floor(quad[:, 0].min()), np.ceil(quad[:, 0].max())], 0, w - 1)).astype(int)
    y0, y1 = (np.clip([np.floor(quad[:, 1].min()), np.ceil(quad[:, 1].max())], 0, h - 1)).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - [x0, y0]).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0]


def _unclip(quad: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow the shrunk text kernel back by area * ratio / perimeter (the DB paper's offset)."""
    poly = Polygon(quad)
    if poly.length == 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(p) for p in quad.round().astype(int).tolist()],
                   pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(poly.area * ratio / poly.length)
    if len(grown) != 1:
        return None
    return np.array(grown[0], dtype=np.float32)


def postprocess(prob: np.ndarray, src_h: int, src_w: int, thresh: float, box_thresh: float,
                unclip_ratio: float) -> list[np.ndarray]:
    """Probability map (h x w) -> text quads (4x2 float, source pixel coordinates)."""
    h, w = prob.shape
    bitmap = (prob > thresh).astype(np.uint8) * 255
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads = []
    for contour in contours[:MAX_CANDIDATES]:
        quad, short_side = _min_quad(contour)
        if short_side < MIN_SIZE or _quad_score(prob, quad) < box_thresh:
            continue
        grown = _unclip(quad, unclip_ratio)
        if grown is None:
            continue
        quad, short_side = _min_quad(grown)
        if short_side < MIN_SIZE + 2:
            continue
        quad[:, 0] = np.clip(np.round(quad[:, 0] * src_w / w), 0, src_w - 1)
        quad[:, 1] = np.clip(np.round(quad[:, 1] * src_h / h), 0, src_h - 1)
        quad = order_quad(quad)
        # Boxes a few pixels wide or tall after scaling are noise.
        if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
            continue
        quads.append(quad)
    return quads


def reading_order(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Top-to-bottom lines, left-to-right inside a line (a line: tops within ~half a box height)."""
    rest = sorted(quads, key=lambda q: (q[0, 1], q[0, 0]))
    ordered: list[np.ndarray] = []
    line: list[np.ndarray] = []
    for quad in rest:
        if line:
            first = line[0]
            tol = max(10.0, 0.5 * float(first[3, 1] - first[0, 1]))
            if abs(quad[0, 1] - first[0, 1]) >= tol:
                ordered += sorted(line, key=lambda q: q[0, 0])
                line = []
        line.append(quad)
    return ordered + sorted(line, key=lambda q: q[0, 0])
