"""Triton model `ocr`: PaddleX 3.x general OCR (PP-OCRv4) over JSON."""

from hps_server import JsonModel, RequestError, ServerContext, images
from ocr_pipeline import OCRPipeline, OCRRequest, draw


class TritonPythonModel(JsonModel):
    Request = OCRRequest

    def setup(self, context: ServerContext) -> None:
        self.pipeline = OCRPipeline.from_context(context)

    def infer(self, request: OCRRequest) -> dict:
        if request.fileType == 0:
            raise RequestError("fileType: PDF input is not supported (send an image, fileType 1)")
        for field in ("useDocOrientationClassify", "useDocUnwarping"):
            if getattr(request, field):
                raise RequestError(f"{field}: document preprocessing is not supported by this server")
        image = images.decode_image(request.file, self.context, "file")
        pruned = self.pipeline.predict(image, self.pipeline.params(request))
        visualize = self.pipeline.settings.visualize if request.visualize is None else request.visualize
        height, width = image.shape[:2]
        return {
            "ocrResults": [{"prunedResult": pruned,
                            "ocrImage": images.encode_jpeg(draw(image, pruned)) if visualize else None}],
            "dataInfo": {"width": width, "height": height, "type": "image"},
        }
