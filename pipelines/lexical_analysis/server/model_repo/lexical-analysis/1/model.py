"""Triton model `lexical-analysis`: Baidu LAC word segmentation and tagging over JSON."""

from hps_server import JsonModel, ServerContext, paddle_predictor
from lexical_analysis import LexicalAnalyzer, Request


class TritonPythonModel(JsonModel):
    Request = Request

    def setup(self, context: ServerContext) -> None:
        # IR optimisation off: Paddle 3.3.1's fc_gru_fuse_pass makes the tags of a text depend on
        # the texts run before it (measured); unfused, this small BiGRU is as fast or faster.
        # oneDNN off: it only acts through those passes (and caches primitives per text length).
        model_dir = context.model_dir("lac")
        predictor = paddle_predictor(None, None, context, model_dir=model_dir, onednn=False, ir_optim=False)
        self.analyzer = LexicalAnalyzer(model_dir, predictor)

    def infer_batch(self, requests: list[Request]) -> list:
        # The texts of every request in the batch share one network run.
        return self.analyzer.analyze(requests)
