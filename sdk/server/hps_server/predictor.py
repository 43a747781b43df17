"""Paddle Inference predictors with the server's device and thread settings."""

from __future__ import annotations

from pathlib import Path

from hps_server import log, occupancy, trace
from hps_server.context import ServerContext


class TimedPredictor:
    """A Paddle Inference predictor whose runs the tracer counts as the inference stage."""

    __slots__ = ("predictor",)

    def __init__(self, predictor):
        self.predictor = predictor

    def run(self, *args):
        with trace.stage("inference"):
            return self.predictor.run(*args)

    def __getattr__(self, name):
        return getattr(self.predictor, name)


class _Handle:
    """An input or output handle of whichever predictor the current batch uses (so a pipeline may
    keep handles from setup)."""

    __slots__ = ("owner", "kind", "name")

    def __init__(self, owner: "AdaptivePredictor", kind: str, name: str):
        self.owner, self.kind, self.name = owner, kind, name

    def __getattr__(self, attribute):
        predictor = self.owner.current()
        handle = predictor.get_input_handle(self.name) if self.kind == "input" else predictor.get_output_handle(self.name)
        return getattr(handle, attribute)


class AdaptivePredictor:
    """Two predictors of one model: one with the instance's threads, one with every CPU, used when
    the batch runs alone (hps_server.occupancy.bursting()); runs timed as inference."""

    __slots__ = ("base", "burst")

    def __init__(self, base, burst):
        self.base, self.burst = base, burst

    def current(self):
        return self.burst if occupancy.bursting() else self.base

    def run(self, *args):
        with trace.stage("inference"):
            return self.current().run(*args)

    def get_input_handle(self, name: str) -> _Handle:
        return _Handle(self, "input", name)

    def get_output_handle(self, name: str) -> _Handle:
        return _Handle(self, "output", name)

    def __getattr__(self, name):
        return getattr(self.current(), name)


def paddle_predictor(model_file: Path | None, params_file: Path | None, context: ServerContext, *,
                     model_dir: Path | None = None, onednn: bool = True, ir_optim: bool = True):
    """A predictor for a model file pair (Paddle 2/3 exports) or a Paddle 1.x model directory.

    ir_optim=False keeps the graph as exported: some fusion passes (e.g. Paddle 3.3's GRU fusion)
    give wrong results for some models.
    """
    base = _create(model_file, params_file, context, context.threads, model_dir, onednn, ir_optim)
    if context.occupancy_allows_burst():
        burst = _create(model_file, params_file, context, context.burst_threads, model_dir, onednn, ir_optim)
        return AdaptivePredictor(base, burst)
    return TimedPredictor(base)


def _create(model_file, params_file, context: ServerContext, threads: int, model_dir, onednn: bool, ir_optim: bool):
    import paddle
    from paddle import inference

    if model_dir is not None:
        config = inference.Config(str(model_dir))
    else:
        config = inference.Config(str(model_file), str(params_file))
    use_gpu = context.device == "gpu"
    if use_gpu and not paddle.is_compiled_with_cuda():
        log.info(f"{context.model_name}: this image's Paddle is its CPU build: Paddle runs on the CPU")
        use_gpu = False
    elif use_gpu and paddle.device.cuda.device_count() == 0:
        log.info(f"{context.model_name}: no usable GPU, running on CPU")
        use_gpu = False
    if use_gpu:
        config.enable_use_gpu(256, context.device_id)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        if onednn:
            config.enable_mkldnn()
            # Paddle 2.6's oneDNN self-attention fusion executes AVX-512 code on any CPU (SIGILL on
            # CPUs without it, e.g. with PP-OCRv4's recognizer: PaddleOCR#11597, fixed in Paddle 3
            # by Paddle#64132); without AVX-512, Paddle 3 skips the pass anyway.
            config.delete_pass("self_attention_fuse_pass")
    config.switch_ir_optim(ir_optim)
    if model_file is None or Path(model_file).suffix != ".json":
        # Paddle 3.3 cannot build a predictor of a PIR model (inference.json) with memory_optim on:
        # "Not find predictor_id 0 and pass_name memory_optimize_pass".
        config.enable_memory_optim()
    config.disable_glog_info()
    return inference.create_predictor(config)
