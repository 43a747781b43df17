"""The text-recognition endpoint: the line resized to the model's height (padded to its width),
one predictor run per request, greedy CTC decoding by the shipped OCR pipeline's own code."""

from __future__ import annotations

import math

import numpy as np
from hps_server import ServerContext, images, paddle_predictor

from text_recognition_pipeline import recognition
from text_recognition_pipeline.settings import Request, Settings


class Pipeline:
    def __init__(self, context: ServerContext):
        self.context = context
        self.settings = settings = context.settings_as(Settings)
        model_dir = context.model_dir(settings.model)
        self.predictor = paddle_predictor(model_dir / settings.model_file, model_dir / settings.params_file, context)
        charset = recognition.load_charset(context.model_dir(settings.dictionary) / settings.dictionary_file)
        self.charset = charset if settings.use_space_char else charset[:-1]
        if len(self.charset) != settings.classes:
            raise ValueError(
                f"the dictionary gives {len(self.charset)} classes (blank + characters"
                f"{' + space' if settings.use_space_char else ''}), the model {settings.classes}"
            )

    def width(self, image: np.ndarray) -> int:
        if self.settings.input_width:
            return self.settings.input_width
        height = self.settings.input_height
        natural = math.ceil(height * image.shape[1] / image.shape[0])
        return min(self.settings.max_width, max(self.settings.min_width, natural))

    def infer(self, request: Request) -> dict:
        image = images.decode_image(request.image, self.context)
        # The OCR pipeline's own resize-and-pad (aspect kept, [-1, 1], zero padding to the right).
        batch = recognition._resize_pad(image, self.settings.input_height, self.width(image))[np.newaxis]
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(np.ascontiguousarray(batch))
        self.predictor.run()
        probs = self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()
        if probs.ndim != 3 or probs.shape[2] != len(self.charset):
            raise ValueError(f"the model gave {list(probs.shape)}, not [1, T, {len(self.charset)}]")
        ((text, score),) = recognition.ctc_decode(probs, self.charset)
        return {"text": text, "score": round(score, 6)}
