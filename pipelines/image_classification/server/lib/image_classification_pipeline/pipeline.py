"""The image-classification endpoint: each image decoded and prepared on its own, the prepared ones
of a dynamic batch classified in one predictor run, every request answered in its own position."""

from __future__ import annotations

import numpy as np

from hps_server import RequestError, ServerContext, images
from image_classification_pipeline.classifier import Classifier, annotate
from image_classification_pipeline.preprocess import UnsupportedImage
from image_classification_pipeline.settings import Request, Settings


class Pipeline:
    def __init__(self, context: ServerContext):
        self.context = context
        self.settings = settings = context.settings_as(Settings)
        model_dir = context.model_dir(settings.model)
        # On the engine the deployment chose; Paddle reads the settings' files, the others the
        # files converted from them.
        predictor = context.predictor(settings.model, files=(model_dir / settings.model_file, model_dir / settings.params_file))
        self.classifier = Classifier(predictor, settings, model_dir)

    def infer_batch(self, requests: list[Request]) -> list[dict | Exception]:
        """Results in request order. A request whose image cannot be read or prepared gets its own
        error (RequestError: a 422; anything else: a 500 for that request only), in its position."""
        results: list[dict | Exception | None] = [None] * len(requests)
        prepared: list[tuple[int, np.ndarray, np.ndarray]] = []  # (position, image, model input)
        for position, request in enumerate(requests):
            try:
                image = images.decode_image(request.image, self.context)
                prepared.append((position, image, self.classifier.prepare(image)))
            except UnsupportedImage as error:
                results[position] = RequestError(f"image: {error}")
            except Exception as error:  # RequestError from decoding, or a bug: this request's answer
                results[position] = error
        if prepared:
            try:
                scores = self.classifier.run([model_input for _, _, model_input in prepared])
            except Exception as error:  # the run failed: every request in it, and only those
                scores = [error] * len(prepared)
            for (position, image, _), row in zip(prepared, scores, strict=True):
                if isinstance(row, Exception):
                    results[position] = row
                    continue
                try:
                    results[position] = self._result(requests[position], image, row)
                except Exception as error:
                    results[position] = error
        return results

    def _result(self, request: Request, image: np.ndarray, scores: np.ndarray) -> dict:
        categories = self.classifier.categories(scores, request.topk or self.settings.topk)
        visualize = self.settings.visualize if request.visualize is None else request.visualize
        return {"categories": categories,
                "image": images.encode_jpeg(annotate(image, categories)) if visualize else None}
