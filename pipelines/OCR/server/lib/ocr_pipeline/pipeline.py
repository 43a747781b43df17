"""The OCR pipeline: detect -> crop -> (orientation) -> recognise, as PaddleX's pruned result."""

from __future__ import annotations

import cv2
import numpy as np

from ocr_pipeline import detection, recognition
from ocr_pipeline.schema import OCRParams, OCRSettings

DET, REC, CLS = "text_detection", "text_recognition", "textline_orientation"
CHARSET_FILE = "ppocr_keys_v1.txt"


def _batches(crops: list[np.ndarray], size: int):
    """Index batches of similar aspect ratio, so little of each batch is padding."""
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
    for start in range(0, len(order), size):
        yield order[start:start + size]


class OCRPipeline:
    def __init__(self, det, rec, cls, charset: list[str], settings: OCRSettings):
        self.det, self.rec, self.cls = det, rec, cls
        self.charset = charset
        self.settings = settings

    @classmethod
    def from_context(cls, context) -> "OCRPipeline":
        """Each model's predictor (hps_server.engines: `run(batch) -> output`) on the engine the
        deployment chose for it."""
        det, rec, ori = (context.predictor(name) for name in (DET, REC, CLS))
        charset = recognition.load_charset(context.model_dir(REC) / CHARSET_FILE)
        return cls(det, rec, ori, charset, context.settings_as(OCRSettings))

    def params(self, request=None) -> OCRParams:
        return OCRParams.resolve(self.settings, request)

    def detect(self, image: np.ndarray, p: OCRParams) -> list[np.ndarray]:
        h, w = image.shape[:2]
        size = detection.det_input_size(h, w, p.limit_side_len, p.limit_type, p.max_side_limit)
        prob = self.det.run(detection.preprocess(image, size))[0, 0]
        quads = detection.postprocess(prob, h, w, p.thresh, p.box_thresh, p.unclip_ratio)
        return detection.reading_order(quads)

    def orient(self, crops: list[np.ndarray]) -> list[int]:
        """Turns crops classified as upside down (confidently) in place; the label index of each."""
        angles = [0] * len(crops)
        for idx in _batches(crops, self.settings.rec_batch_size):
            probs = self.cls.run(recognition.cls_batch([crops[i] for i in idx]))
            for i, row in zip(idx, probs):
                label = int(row.argmax())
                angles[i] = label
                if recognition.CLS_LABELS[label] == "180" and row[label] > self.settings.textline_orientation_thresh:
                    crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return angles

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for idx in _batches(crops, self.settings.rec_batch_size):
            probs = self.rec.run(recognition.rec_batch([crops[i] for i in idx]))
            if probs.shape[2] != len(self.charset):
                raise RuntimeError(f"recogniser has {probs.shape[2]} classes, charset has {len(self.charset)}")
            for i, result in zip(idx, recognition.ctc_decode(probs, self.charset)):
                results[i] = result
        return results

    def predict(self, image: np.ndarray, p: OCRParams) -> dict:
        """PaddleX's `prunedResult` for one BGR image."""
        quads = self.detect(image, p)
        crops = [recognition.crop_quad(image, q) for q in quads]
        angles = self.orient(crops) if p.use_textline_orientation and crops else [-1] * len(crops)
        texts, scores, polys = [], [], []
        for quad, (text, score) in zip(quads, self.recognize(crops)):
            # Empty strings carry nothing for the client, whatever their score.
            if text and score >= p.rec_score_thresh:
                texts.append(text)
                scores.append(score)
                polys.append(quad.astype(int).tolist())
        return {
            "model_settings": {"use_doc_preprocessor": False,
                               "use_textline_orientation": p.use_textline_orientation},
            "dt_polys": [q.astype(int).tolist() for q in quads],
            "text_det_params": {"limit_side_len": p.limit_side_len, "limit_type": p.limit_type,
                                "thresh": p.thresh, "max_side_limit": p.max_side_limit,
                                "box_thresh": p.box_thresh, "unclip_ratio": p.unclip_ratio},
            "text_type": "general",
            "textline_orientation_angles": angles,
            "text_rec_score_thresh": p.rec_score_thresh,
            "rec_texts": texts,
            "rec_scores": scores,
            "rec_polys": polys,
            "rec_boxes": [[min(x for x, _ in q), min(y for _, y in q), max(x for x, _ in q),
                           max(y for _, y in q)] for q in polys],
        }


def draw(image: np.ndarray, pruned: dict) -> np.ndarray:
    """The input with each recognised polygon outlined (no text: the runtime has no CJK font)."""
    canvas = image.copy()
    polys = [np.array(p, dtype=np.int32) for p in pruned["rec_polys"]]
    cv2.polylines(canvas, polys, isClosed=True, color=(0, 200, 0), thickness=2)
    return canvas
