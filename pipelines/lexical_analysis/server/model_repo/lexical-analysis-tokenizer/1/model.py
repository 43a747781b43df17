"""lexical-analysis-tokenizer: JSON request documents -> ids, lengths and meta (lexical_analysis.Tokenizer)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from hps_server import TensorModel
from lexical_analysis import Tokenizer


class TritonPythonModel(TensorModel):
    def setup(self, context):
        self.tokenizer = Tokenizer(context.model_dir("lac"))

    def execute(self, requests):
        responses = []
        for request in requests:
            documents = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            ids, lengths, metas = self.tokenizer([bytes(item) for item in documents.reshape(-1)])
            meta = np.array(metas, dtype=np.object_).reshape(documents.shape)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("ids", ids), pb_utils.Tensor("lengths", lengths), pb_utils.Tensor("meta", meta)]))
        return responses
