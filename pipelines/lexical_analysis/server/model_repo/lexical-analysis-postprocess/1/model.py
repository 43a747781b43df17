"""lexical-analysis-postprocess: meta + tag ids -> response envelopes (lexical_analysis.Postprocess)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from hps_server import TensorModel, metrics
from lexical_analysis import Postprocess


class TritonPythonModel(TensorModel):
    def setup(self, context):
        self.postprocess = Postprocess(context.model_dir("lac"))

    def execute(self, requests):
        responses = []
        for request in requests:
            meta = pb_utils.get_input_tensor_by_name(request, "meta").as_numpy()
            tags = pb_utils.get_input_tensor_by_name(request, "tags").as_numpy()
            answers = self.postprocess([bytes(item) for item in meta.reshape(-1)], tags)
            metrics.count("lexical-analysis", answers)  # counted under the public endpoint's name
            output = np.array(answers, dtype=np.object_).reshape(meta.shape)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("output", output)]))
        return responses
