"""The detection endpoint: the image resized to the model's input, fed with its size and scale
factor, one predictor run per request; the boxes come back in the original image's pixels."""

from __future__ import annotations

import cv2
import numpy as np
from hps_server import ServerContext, images, paddle_predictor

from detection_pipeline.boxes import detected_objects
from detection_pipeline.settings import Request, Settings


class Pipeline:
    def __init__(self, context: ServerContext):
        self.context = context
        self.settings = settings = context.settings_as(Settings)
        model_dir = context.model_dir(settings.model)
        self.predictor = paddle_predictor(model_dir / settings.model_file, model_dir / settings.params_file, context)
        self.mean = np.array(settings.mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(settings.std, dtype=np.float32).reshape(3, 1, 1)

    def prepare(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The three inputs for one BGR image (a batch of one)."""
        height, width = self.settings.input_size
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.settings.channels == "rgb":
            resized = resized[:, :, ::-1]
        chw = (resized.transpose(2, 0, 1).astype(np.float32) * self.settings.scale - self.mean) / self.std
        return {
            self.settings.image_input: chw[np.newaxis],
            self.settings.im_shape_input: np.array([[height, width]], dtype=np.float32),
            self.settings.scale_factor_input: np.array(
                [[height / image.shape[0], width / image.shape[1]]], dtype=np.float32
            ),
        }

    def infer(self, request: Request) -> dict:
        image = images.decode_image(request.image, self.context)
        for name, array in self.prepare(image).items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        boxes = self.predictor.get_output_handle(self.settings.boxes_output).copy_to_cpu()
        counts = self.predictor.get_output_handle(self.settings.counts_output).copy_to_cpu()
        threshold = self.settings.threshold if request.threshold is None else request.threshold
        (found,) = detected_objects(boxes, counts, threshold, self.settings.labels)
        return {"detectedObjects": found, "image": None}
