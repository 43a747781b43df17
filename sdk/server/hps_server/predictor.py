"""Paddle Inference predictors with the server's device and thread settings."""

from __future__ import annotations

from pathlib import Path

from hps_server import log
from hps_server.context import ServerContext


def paddle_predictor(model_file: Path | None, params_file: Path | None, context: ServerContext, *,
                     model_dir: Path | None = None, onednn: bool = True, ir_optim: bool = True):
    """A predictor for a model file pair (Paddle 2/3 exports) or a Paddle 1.x model directory.

    ir_optim=False keeps the graph as exported: some fusion passes (e.g. Paddle 3.3's GRU fusion)
    give wrong results for some models.
    """
    import paddle
    from paddle import inference

    if model_dir is not None:
        config = inference.Config(str(model_dir))
    else:
        config = inference.Config(str(model_file), str(params_file))
    use_gpu = context.device == "gpu"
    if use_gpu and not (paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0):
        log.info(f"{context.model_name}: no usable GPU, running on CPU")
        use_gpu = False
    if use_gpu:
        config.enable_use_gpu(256, context.device_id)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(context.threads)
        if onednn:
            config.enable_mkldnn()
            # Paddle 2.6's oneDNN self-attention fusion executes AVX-512 code on any CPU (SIGILL on
            # CPUs without it, e.g. with PP-OCRv4's recognizer: PaddleOCR#11597, fixed in Paddle 3
            # by Paddle#64132); without AVX-512, Paddle 3 skips the pass anyway.
            config.delete_pass("self_attention_fuse_pass")
    config.switch_ir_optim(ir_optim)
    config.enable_memory_optim()
    config.disable_glog_info()
    return inference.create_predictor(config)
