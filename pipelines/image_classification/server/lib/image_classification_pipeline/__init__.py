"""Generic Paddle Inference image classification (PaddleX 3.x image-classification schema).

Which model and how to feed it come from the pipeline's [settings] (see settings.Settings); the
default is PP-OCR's text-line orientation classifier. `pipeline` needs hps_server (serve time);
the rest runs on numpy, OpenCV and a Paddle predictor alone.
"""

from image_classification_pipeline.classifier import Classifier, annotate
from image_classification_pipeline.settings import Request, Settings

__all__ = ["Classifier", "Request", "Settings", "annotate"]
