"""One predictor interface, one implementation per inference engine, chosen once at load.

Pipeline code asks its context for the predictor of a model artifact (`context.predictor(name)`)
and calls `run(batch) -> output` on it; which engine answers is the deployment's choice, never the
pipeline's or a request's:

  HPS_ENGINE_<MODEL>=ENGINE   that model runs on ENGINE (it must declare it: else the model does not load)
  HPS_ENGINE=ENGINE           every model that declares ENGINE runs on it; the others keep their default
  neither                     the model's `engine` in pipeline.toml (`paddle` when it declares none);
                              when that default cannot run here: on a GPU instance ONNX Runtime if the
                              model declares it and its CUDA provider is there (the gpu-cu12 image),
                              else Paddle, the reference every model has (on a GPU instance of an image
                              whose Paddle is the CPU build, Paddle runs on the CPU: LAC on gpu-cu12)

<MODEL> is the artifact name upper-cased, every other character than A-Z and 0-9 turned to `_`
(text_detection: HPS_ENGINE_TEXT_DETECTION). Files: Paddle runs the locked Paddle files of
models/<name>/; the others run the files converted from them at build time,
models/<name>/onnxruntime/model.onnx and models/<name>/openvino/model.xml (+ model.bin).

Engine settings (environment, read once per model load; defaults measured on 2 cores, docs/pipelines.md):
  HPS_ORT_GRAPH_OPTIMIZATION  disable | basic | extended | all (default all)
  HPS_OPENVINO_HINT           LATENCY | THROUGHPUT (default LATENCY: one request at a time per instance)
  HPS_OPENVINO_PRECISION      f32 | bf16 | f16 (default f32: bf16 is 2x faster on AMX CPUs but differs
                              from Paddle by up to 3.4e-2 on PP-OCRv4 recognition)
Threads are the server's: the instance's planned threads, and its burst threads when it runs alone
(hps_server.occupancy), each engine getting one session per thread count.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hps_server import log, occupancy, trace

PADDLE, ONNXRUNTIME, OPENVINO = "paddle", "onnxruntime", "openvino"
ENGINES = (PADDLE, ONNXRUNTIME, OPENVINO)
REFERENCE = PADDLE
ENGINE_VARIABLE = "HPS_ENGINE"
# The converted file each engine other than Paddle loads, under models/<name>/<engine>/.
CONVERTED_FILES = {ONNXRUNTIME: "onnxruntime/model.onnx", OPENVINO: "openvino/model.xml"}
PADDLE_PROGRAM_SUFFIXES = (".pdmodel", ".json")
PADDLE_PARAMS_SUFFIX = ".pdiparams"

ORT_LEVELS = ("disable", "basic", "extended", "all")
OPENVINO_HINTS = ("LATENCY", "THROUGHPUT")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


class EngineError(ValueError):
    """A deployment's engine choice the model cannot honour, or an engine setting out of range."""


def variable(model: str) -> str:
    """The per-model override variable: HPS_ENGINE_TEXT_DETECTION for text_detection."""
    return f"{ENGINE_VARIABLE}_{re.sub(r'[^A-Z0-9]', '_', model.upper())}"


@dataclass(frozen=True)
class Declared:
    """A model's engines and default, as its pipeline.toml [[models]] entry declares them."""

    engines: tuple[str, ...] = (PADDLE,)
    default: str = PADDLE

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any] | None) -> Declared:
        if not entry:
            return cls()
        engines = tuple(entry.get("engines") or (PADDLE,))
        return cls(engines, str(entry.get("engine") or PADDLE))


def _known(engine: str, where: str, model: str) -> str:
    if engine not in ENGINES:
        raise EngineError(f"{where}={engine!r}: unknown engine for model {model!r} (one of {', '.join(ENGINES)})")
    return engine


def choose(model: str, declared: Declared, environ: Mapping[str, str] | None = None,
           available: Collection[str] = ENGINES, device: str = "cpu") -> tuple[str, str]:
    """(engine, why) for a model: its own override, else the deployment-wide one if it declares
    that engine, else its default. An override naming an engine it does not declare, or one that
    cannot run here (`available`: not installed in the image, or a CPU engine on a GPU instance), is
    an error; a default that cannot run here falls back to Paddle, the reference every model has."""
    environ = os.environ if environ is None else environ
    name = variable(model)
    if own := environ.get(name, "").strip():
        if _known(own, name, model) not in declared.engines:
            raise EngineError(f"{name}={own}: model {model!r} does not declare engine {own!r} "
                              f"(its engines: {', '.join(declared.engines)})")
        if own not in available:
            raise EngineError(f"{name}={own}: engine {own!r} cannot run here (this instance can run: "
                              f"{', '.join(available)})")
        return own, name
    if every := environ.get(ENGINE_VARIABLE, "").strip():
        if _known(every, ENGINE_VARIABLE, model) in declared.engines:
            if every not in available:
                raise EngineError(f"{ENGINE_VARIABLE}={every}: engine {every!r} cannot run here (this "
                                  f"instance can run: {', '.join(available)})")
            return every, ENGINE_VARIABLE
        why = f"its default ({ENGINE_VARIABLE}={every} is not one of its engines)"
    else:
        why = "its default"
    if declared.default not in available:
        if device == "gpu" and ONNXRUNTIME in available and ONNXRUNTIME in declared.engines:
            return ONNXRUNTIME, f"{why} {declared.default} cannot run here, so ONNX Runtime on the GPU"
        return PADDLE, f"{why} {declared.default} cannot run here, so Paddle, the reference"
    return declared.default, why


CUDA_PROVIDER = "CUDAExecutionProvider"


def available_engines(device: str) -> tuple[str, ...]:
    """The engines an instance can run: Paddle always; on a CPU instance the others whose module the
    image carries; on a GPU instance ONNX Runtime when its CUDA provider is there (gpu-cu12)."""
    if device == "gpu":
        return (PADDLE, ONNXRUNTIME) if _onnxruntime_has_cuda() else (PADDLE,)
    return tuple(e for e in ENGINES if e == PADDLE or importlib.util.find_spec(e) is not None)


def _onnxruntime_has_cuda() -> bool:
    if importlib.util.find_spec(ONNXRUNTIME) is None:
        return False
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def onnxruntime_providers(device: str, device_id: int) -> list[Any]:
    """The execution providers of a session: the CUDA provider on the instance's GPU first (CPU for
    the operators it lacks) on a GPU instance; the CPU provider alone otherwise."""
    if device == "gpu":
        return [(CUDA_PROVIDER, {"device_id": device_id}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class EngineSettings:
    ort_graph_optimization: str = "all"
    openvino_hint: str = "LATENCY"
    openvino_precision: str = "f32"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> EngineSettings:
        environ = os.environ if environ is None else environ

        def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = environ.get(name, "").strip() or default
            if value not in allowed:
                raise EngineError(f"{name}={value!r}: not one of {', '.join(allowed)}")
            return value

        return cls(
            ort_graph_optimization=pick("HPS_ORT_GRAPH_OPTIMIZATION", ORT_LEVELS, cls.ort_graph_optimization),
            openvino_hint=pick("HPS_OPENVINO_HINT", OPENVINO_HINTS, cls.openvino_hint),
            openvino_precision=pick("HPS_OPENVINO_PRECISION", OPENVINO_PRECISIONS, cls.openvino_precision),
        )


Run = Callable[[np.ndarray], np.ndarray]
# Called after every run with (model, engine, input, output): the parity runner records with it.
_observers: list[Callable[[str, str, np.ndarray, np.ndarray], None]] = []


def observe(observer: Callable[[str, str, np.ndarray, np.ndarray], None]) -> Callable[[], None]:
    """Have `observer` see every run of every predictor of this process; returns its removal."""
    _observers.append(observer)
    return lambda: _observers.remove(observer)


class Predictor:
    """A model on one engine: `run(batch)` feeds its one input and returns its first output, timed
    by the tracer as the `inference` stage. With a burst session it uses every CPU while no other
    instance of the model executes (hps_server.occupancy.bursting())."""

    __slots__ = ("_base", "_burst", "engine", "model")

    def __init__(self, model: str, engine: str, base: Run, burst: Run | None = None):
        self.model, self.engine = model, engine
        self._base, self._burst = base, burst

    def run(self, batch: np.ndarray) -> np.ndarray:
        run = self._burst if self._burst is not None and occupancy.bursting() else self._base
        with trace.stage("inference"):
            output = run(np.ascontiguousarray(batch))
        for observer in _observers:
            observer(self.model, self.engine, batch, output)
        return output


def paddle_files(folder: Path) -> tuple[Path, Path]:
    """The one Paddle program (X.pdmodel or X.json) beside its X.pdiparams in a model folder."""
    pairs = [
        (folder / (params.name.removesuffix(PADDLE_PARAMS_SUFFIX) + suffix), params)
        for params in sorted(folder.glob("*" + PADDLE_PARAMS_SUFFIX))
        for suffix in PADDLE_PROGRAM_SUFFIXES
        if (folder / (params.name.removesuffix(PADDLE_PARAMS_SUFFIX) + suffix)).is_file()
    ]
    if len(pairs) != 1:
        raise FileNotFoundError(f"{folder}: expected one Paddle program + {PADDLE_PARAMS_SUFFIX} pair, found {len(pairs)}")
    return pairs[0]


def converted_file(folder: Path, engine: str) -> Path:
    path = folder / CONVERTED_FILES[engine]
    if not path.is_file():
        raise FileNotFoundError(f"model files of engine {engine!r} are missing: {path} does not exist "
                                "(the pipeline image carries the files converted at build time)")
    return path


def _paddle(context: Any, folder: Path, files: tuple[Path, Path] | None, onednn: bool, ir_optim: bool) -> Callable[[int], Run]:
    from hps_server.predictor import _create

    model_file, params_file = files or paddle_files(folder)

    def make(threads: int) -> Run:
        predictor = _create(model_file, params_file, context, threads, None, onednn, ir_optim)
        source = predictor.get_input_handle(predictor.get_input_names()[0])
        output = predictor.get_output_names()[0]

        def run(batch: np.ndarray) -> np.ndarray:
            source.reshape(list(batch.shape))
            source.copy_from_cpu(batch)
            predictor.run()
            return predictor.get_output_handle(output).copy_to_cpu()

        return run

    return make


def _onnxruntime(folder: Path, settings: EngineSettings, providers: list[Any]) -> Callable[[int], Run]:
    import onnxruntime as ort

    path = converted_file(folder, ONNXRUNTIME)
    level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.ort_graph_optimization]

    def make(threads: int) -> Run:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = level
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: the other instances need those cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=providers)
        name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> np.ndarray:
            return session.run(None, {name: batch})[0]

        return run

    return make


_core: Any = None


def _openvino(folder: Path, settings: EngineSettings) -> Callable[[int], Run]:
    global _core
    import openvino as ov

    path = converted_file(folder, OPENVINO)
    if _core is None:
        _core = ov.Core()
    core = _core

    def make(threads: int) -> Run:
        compiled = core.compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": settings.openvino_hint,
            "INFERENCE_PRECISION_HINT": settings.openvino_precision,
            # Each Triton instance is a process of its own, and OpenVINO pins each one's threads to
            # the same first cores: two 1-thread instances of PP-OCRv4 recognition ran 21 runs/s
            # each pinned, 44 unpinned (2 cores).
            "ENABLE_CPU_PINNING": False,
        })
        request = compiled.create_infer_request()

        def run(batch: np.ndarray) -> np.ndarray:
            # share_outputs=False: the array outlives the next run of this request.
            return request.infer({0: batch}, share_outputs=False)[0]

        return run

    return make


def create(context: Any, name: str, engine: str, *, files: tuple[Path, Path] | None = None,
           onednn: bool = True, ir_optim: bool = True, settings: EngineSettings | None = None) -> Predictor:
    """The predictor of model artifact `name` on `engine`, with the context's threads (and burst
    threads). `files` names the Paddle program and parameters when the folder holds several."""
    folder = context.model_dir(name)
    settings = settings or EngineSettings.from_environ()
    if engine == PADDLE:
        make = _paddle(context, folder, files, onednn, ir_optim)
    elif engine == ONNXRUNTIME:
        make = _onnxruntime(folder, settings, onnxruntime_providers(context.device, context.device_id))
    elif context.device == "gpu":
        raise EngineError(f"model {name!r}: engine {engine!r} runs on CPU only; this instance is on a GPU")
    elif engine == OPENVINO:
        make = _openvino(folder, settings)
    else:
        raise EngineError(f"model {name!r}: unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    base = make(context.threads)
    burst = make(context.burst_threads) if context.occupancy_allows_burst() else None
    return Predictor(name, engine, base, burst)


def load(context: Any, name: str, **options: Any) -> Predictor:
    """The predictor of model artifact `name` on the engine the deployment chose (see the module
    docstring), logged once."""
    declared = Declared.from_entry(context.models.get(name))
    engine, why = choose(name, declared, os.environ, available_engines(context.device), context.device)
    settings = EngineSettings.from_environ()
    predictor = create(context, name, engine, settings=settings, **options)
    detail = {
        PADDLE: "",
        ONNXRUNTIME: f", graph optimisation {settings.ort_graph_optimization}",
        OPENVINO: f", {settings.openvino_hint} {settings.openvino_precision}",
    }[engine]
    log.info(f"{context.model_name}: model {name} runs on {engine} ({why}; declared "
             f"{', '.join(declared.engines)}), {context.threads} thread(s){detail}")
    return predictor
