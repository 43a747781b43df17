"""dlib faces: HOG detection, 5-point landmarks and 128-d ResNet embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np
from hps_server import trace

SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
EMBEDDING_DIM = 128


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in input pixels; may stick out of the image
    score: float  # the HOG detector's SVM score (dlib's own threshold is 0.0)

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


class FaceModel:
    def __init__(self, model_dir: Path, *, upsample: int, max_side: int):
        for name in (SHAPE_FILE, RESNET_FILE):
            if not (model_dir / name).is_file():
                raise FileNotFoundError(f"dlib model file missing: {model_dir / name}")
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(model_dir / SHAPE_FILE))
        self.resnet = dlib.face_recognition_model_v1(str(model_dir / RESNET_FILE))
        self.upsample = upsample
        self.max_side = max_side

    def detect(self, rgb: np.ndarray, threshold: float) -> list[Face]:
        """Faces scoring at least `threshold`, best first."""
        height, width = rgb.shape[:2]
        # HOG time grows with pixels: detect on a shrunk copy, embed on the original.
        scale = min(1.0, self.max_side / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        with trace.stage("inference"):  # dlib's runs are this pipeline's model inference
            rects, scores, _ = self.detector.run(small, self.upsample, threshold)
        faces = [
            Face((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), float(s))
            for r, s in zip(rects, scores)
            if s >= threshold
        ]
        return sorted(faces, key=lambda face: -face.score)

    def embed(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(len(faces), 128) float32 descriptors; same person when euclidean distance < 0.6."""
        if not faces:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        with trace.stage("inference"):
            shapes = dlib.full_object_detections()
            for face in faces:
                rect = dlib.rectangle(*(round(v) for v in face.box))
                shapes.append(self.landmarks(rgb, rect))
            # num_jitters 0: no random jitter, so embeddings are deterministic.
            return np.array(self.resnet.compute_face_descriptor(rgb, shapes, 0), dtype=np.float32)
