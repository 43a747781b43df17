"""Text recognition with a CTC recogniser (input [N, 3, 32|48, W], output [N, T, C]), greedy-decoded
over the user's character dictionary. `recognition` is the shipped OCR pipeline's own module
(pipelines/OCR/server/lib/ocr_pipeline/recognition.py), copied in by `nox -s new-pipeline`.
`pipeline` needs hps_server (serve time).
"""

from text_recognition_pipeline.settings import Request, Settings

__all__ = ["Request", "Settings"]
