"""The four face recognition operations on top of dlib faces and the persistent gallery."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hps_server import RequestError, ServerContext, images

from face_recognition_pipeline.faces import EMBEDDING_DIM, Face, FaceModel
from face_recognition_pipeline.gallery import Gallery, GalleryStore, IndexCorrupt, IndexNotFound, UnknownIds
from face_recognition_pipeline.schemas import (AddImagesToIndexRequest, BuildIndexRequest, FaceSettings,
                                               ImageLabelPair, InferRequest, RemoveImagesFromIndexRequest)

ARTIFACT = "dlib_face"
INDEX_DIR = "face_index"


class GalleryUnavailable(RequestError):
    """A stored index cannot be read: the server's fault, so errorCode 500, but with a clear message."""

    code = 500


class FacePipeline:
    def __init__(self, context: ServerContext, *, load_models: bool = True):
        self.context = context
        self.settings = context.settings_as(FaceSettings)
        self.store = GalleryStore(Path(context.state_dir) / INDEX_DIR)
        self.faces = None
        if load_models:  # index-remove needs only the store
            self.faces = FaceModel(context.model_dir(ARTIFACT), upsample=self.settings.upsample,
                                   max_side=self.settings.max_side)

    def build(self, request: BuildIndexRequest) -> dict:
        labels, embeddings = self._gallery_faces(request.imageLabelPairs)
        key, gallery = self.store.create(labels, embeddings)
        return {"indexKey": key, "imageCount": len(gallery), "ids": gallery.ids.tolist()}

    def add(self, request: AddImagesToIndexRequest) -> dict:
        self._load(request.indexKey)  # fail on a bad key before the slow part
        labels, embeddings = self._gallery_faces(request.imageLabelPairs)
        ids, gallery = self._guard(self.store.add, request.indexKey, labels, embeddings)
        return {"imageCount": len(gallery), "ids": ids}

    def remove(self, request: RemoveImagesFromIndexRequest) -> dict:
        gallery = self._guard(self.store.remove, request.indexKey, request.ids)
        return {"imageCount": len(gallery)}

    def infer(self, request: InferRequest) -> dict:
        gallery = self._load(request.indexKey) if request.indexKey is not None else None
        bgr = images.decode_image(request.image, self.context)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        settings = self.settings
        det_threshold = _pick(request.detThreshold, settings.det_threshold)
        rec_threshold = _pick(request.recThreshold, settings.rec_threshold)
        topk = _pick(request.topk, settings.topk)
        faces = self.faces.detect(rgb, det_threshold)
        embeddings = self.faces.embed(rgb, faces) if gallery is not None and len(gallery) else None
        height, width = bgr.shape[:2]
        results = []
        for row, face in enumerate(faces):
            matches = gallery.search(embeddings[row], rec_threshold, topk) if embeddings is not None else []
            results.append({
                "bbox": _clip(face.box, width, height),
                "recResults": [{"label": label, "score": score} for label, score in matches],
                "score": face.score,
            })
        image = None
        if _pick(request.visualize, settings.visualize):
            image = images.encode_jpeg(_draw(bgr, results))
        return {"faces": results, "image": image}

    def _gallery_faces(self, pairs: list[ImageLabelPair]) -> tuple[list[str], np.ndarray]:
        """One embedding per pair: its largest face. Any pair without a face fails the request."""
        embeddings = np.zeros((len(pairs), EMBEDDING_DIM), np.float32)
        for index, pair in enumerate(pairs):
            where = f"imageLabelPairs[{index}] (label {pair.label!r})"
            try:
                bgr = images.decode_image(pair.image, self.context)
            except RequestError as error:
                raise RequestError(f"{where}: {error}") from None
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            faces = self.faces.detect(rgb, self.settings.det_threshold)
            if not faces:
                raise RequestError(f"{where}: no face found in the image")
            largest: Face = max(faces, key=lambda face: face.area)
            embeddings[index] = self.faces.embed(rgb, [largest])[0]
        return [pair.label for pair in pairs], embeddings

    def _load(self, key: str) -> Gallery:
        return self._guard(self.store.load, key)

    @staticmethod
    def _guard(operation, *args):
        """Store errors as answers: bad keys and ids are 422, a damaged index file is 500."""
        try:
            return operation(*args)
        except (IndexNotFound, UnknownIds) as error:
            raise RequestError(str(error)) from None
        except IndexCorrupt as error:
            raise GalleryUnavailable(str(error)) from None


def _pick(value, default):
    return default if value is None else value


def _clip(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [round(min(max(x1, 0.0), width), 2), round(min(max(y1, 0.0), height), 2),
            round(min(max(x2, 0.0), width), 2), round(min(max(y2, 0.0), height), 2)]


def _draw(bgr: np.ndarray, faces: list[dict]) -> np.ndarray:
    canvas = bgr.copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face["bbox"])
        best = face["recResults"][0] if face["recResults"] else None
        color = (0, 200, 0) if best else (0, 0, 255)
        text = f"{best['label']} {best['score']:.2f}" if best else "unknown"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        cv2.putText(canvas, text, (x1, max(0, y1 - 2 * thickness)), cv2.FONT_HERSHEY_SIMPLEX,
                    thickness / 3, color, thickness)
    return canvas
