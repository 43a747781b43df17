"""Object detection with a PaddleDetection export (inputs image, im_shape, scale_factor; outputs a
[M, 6] box tensor and a per-image box count), answered in PaddleX 3.x's object-detection schema.

Which tensors and how to feed the model are in the pipeline's [settings], written by
`nox -s new-pipeline --kind detection`. `boxes` is numpy alone; `pipeline` needs hps_server (serve time).
"""

from detection_pipeline.settings import Request, Settings

__all__ = ["Request", "Settings"]
