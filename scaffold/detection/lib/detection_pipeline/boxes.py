"""A PaddleDetection export's output, read: rows of (class, score, x1, y1, x2, y2) and a count per
image, as PaddleX's detected objects. numpy only (unit-tested on the host)."""

from __future__ import annotations

import numpy as np


def detected_objects(boxes: np.ndarray, counts: np.ndarray, threshold: float, labels: list[str]) -> list[list[dict]]:
    """Per image, the rows scoring at least `threshold`, best first. A class id outside `labels`
    is named by its number; a count that does not add up to the rows is the model's fault."""
    boxes = np.asarray(boxes, dtype=np.float64)
    counts = np.asarray(counts).reshape(-1).astype(np.int64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 6)
    if boxes.ndim != 2 or boxes.shape[1] != 6:
        raise ValueError(f"the box output has shape {list(boxes.shape)}, not [M, 6]")
    if (counts < 0).any() or int(counts.sum()) != boxes.shape[0]:
        raise ValueError(f"the box counts {counts.tolist()} do not add up to the {boxes.shape[0]} boxes")
    if not np.isfinite(boxes).all():
        raise ValueError("the box output holds NaN or infinity")
    found = []
    start = 0
    for count in counts.tolist():
        rows = boxes[start : start + count]
        start += count
        kept = [row for row in rows.tolist() if row[0] >= 0 and row[1] >= threshold]
        kept.sort(key=lambda row: -row[1])
        found.append(
            [
                {
                    "bbox": [round(value, 3) for value in row[2:6]],
                    "categoryId": int(row[0]),
                    "categoryName": labels[int(row[0])] if int(row[0]) < len(labels) else str(int(row[0])),
                    "score": round(row[1], 6),
                }
                for row in kept
            ]
        )
    return found
