"""Named tensors in, named tensors out: a Paddle Inference model served with no task around it.

The model's inputs and outputs (names, dtypes, shapes) are in the pipeline's [settings], read from
the model itself by `nox -s new-pipeline`. `pipeline` needs hps_server (serve time).
"""

from tensor_pipeline.settings import Request, Settings, TensorSpec

__all__ = ["Request", "Settings", "TensorSpec"]
