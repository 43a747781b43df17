"""The image-classification endpoint: decode, classify a dynamic batch in one run, answer each."""

from __future__ import annotations

import numpy as np

from hps_server import RequestError, ServerContext, images, paddle_predictor
from image_classification_pipeline.classifier import Classifier, annotate
from image_classification_pipeline.settings import Request, Settings


class Pipeline:
    def __init__(self, context: ServerContext):
        self.context = context
        self.settings = settings = context.settings_as(Settings)
        model_dir = context.model_dir(settings.model)
        predictor = paddle_predictor(model_dir / settings.model_file, model_dir / settings.params_file, context)
        self.classifier = Classifier(predictor, settings, model_dir)

    def infer_batch(self, requests: list[Request]) -> list[dict | Exception]:
        """Results in request order; a request whose image cannot be read gets its own error."""
        results: list[dict | Exception | None] = [None] * len(requests)
        decoded: list[tuple[int, np.ndarray]] = []
        for position, request in enumerate(requests):
            try:
                decoded.append((position, images.decode_image(request.image, self.context)))
            except RequestError as error:
                results[position] = error
        if decoded:
            scores = self.classifier.scores([image for _, image in decoded])
            for (position, image), row in zip(decoded, scores):
                results[position] = self._result(requests[position], image, row)
        return results

    def _result(self, request: Request, image: np.ndarray, scores: np.ndarray) -> dict:
        categories = self.classifier.categories(scores, request.topk or self.settings.topk)
        visualize = self.settings.visualize if request.visualize is None else request.visualize
        return {"categories": categories,
                "image": images.encode_jpeg(annotate(image, categories)) if visualize else None}
