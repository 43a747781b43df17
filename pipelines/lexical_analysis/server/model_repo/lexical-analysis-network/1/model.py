"""lexical-analysis-network: word ids -> CRF tag ids with LAC's Paddle 1.x model (lexical_analysis.Network)."""

import triton_python_backend_utils as pb_utils

from hps_server import TensorModel, paddle_predictor
from lexical_analysis import Network


class TritonPythonModel(TensorModel):
    def setup(self, context):
        # IR optimisation off: Paddle 3.3.1's fc_gru_fuse_pass makes the tags of a text depend on
        # the texts run before it (measured); unfused, this small BiGRU is as fast or faster.
        # oneDNN off: it only acts through those passes (and caches primitives per text length).
        predictor = paddle_predictor(None, None, context, model_dir=context.model_dir("lac"),
                                     onednn=False, ir_optim=False)
        self.network = Network(predictor)

    def execute(self, requests):
        batches = [(pb_utils.get_input_tensor_by_name(request, "ids").as_numpy(),
                    pb_utils.get_input_tensor_by_name(request, "lengths").as_numpy()) for request in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("tags", tags)])
                for tags in self.network(batches)]
