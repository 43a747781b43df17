"""A classifier: images prepared one by one, then scored in one predictor run (any engine)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from image_classification_pipeline.preprocess import preprocess
from image_classification_pipeline.settings import Settings

FONT = cv2.FONT_HERSHEY_SIMPLEX


class Classifier:
    def __init__(self, predictor, settings: Settings, model_dir: Path):
        self.predictor, self.settings = predictor, settings  # hps_server.engines.Predictor
        # A warm-up run, which also tells how many classes the model has.
        height, width = settings.input_size
        classes = self.run([np.zeros((3, height, width), np.float32)]).shape[1]
        labels = settings.labels
        if settings.labels_file:
            labels = (model_dir / settings.labels_file).read_text("utf-8").splitlines()
        if len(labels) != classes:
            raise ValueError(f"settings name {len(labels)} labels but model {settings.model!r} "
                             f"has {classes} classes")
        self.labels = labels

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The model input (CHW float32) of one BGR image; preprocess.UnsupportedImage if the
        settings' preprocessing cannot take it."""
        return preprocess(image, self.settings)

    def run(self, inputs: list[np.ndarray]) -> np.ndarray:
        """[N, classes] scores of N prepared inputs, in one predictor run."""
        out = self.predictor.run(np.stack(inputs)).reshape(len(inputs), -1)
        if self.settings.softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def categories(self, scores: np.ndarray, topk: int) -> list[dict]:
        """The topk best classes of one image, best first (ties: lower id first)."""
        order = np.argsort(-scores, kind="stable")[:topk]
        return [{"id": int(i), "name": self.labels[i], "score": float(scores[i])} for i in order]


def annotate(image: np.ndarray, categories: list[dict]) -> np.ndarray:
    """The image under a white bar naming its best class and score."""
    best = categories[0]
    text = f"{best['name']} {best['score']:.3f}"
    h, w = image.shape[:2]
    font_scale = min(2.0, max(0.5, w / 640))
    thickness = max(1, round(font_scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    bar = text_h + baseline + 8
    canvas = np.full((bar + h, max(w, text_w + 8), 3), 255, np.uint8)
    canvas[bar:, :w] = image
    cv2.putText(canvas, text, (4, 4 + text_h), FONT, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas
