"""Check: the golden cases pass with the pipeline image started on each engine its models declare
besides Paddle (HPS_ENGINE=<engine>: every model declaring it runs on it), over HTTP with the
client library. Paddle itself is the image's default run (test_goldens.py)."""

from __future__ import annotations

import subprocess

import conftest
import pytest
from test_goldens import _client_library

from hpsforge.bundle import goldens
from hpsforge.core.pipelines import load_pipelines
from hpsforge.core.settings import settings
from hpsforge.locks import pip_locks, requirements_lock

ENGINE_FILES = {"onnxruntime": "onnxruntime/model.onnx", "openvino": "openvino/model.xml"}
# The locked packages that carry each engine's module (ONNX Runtime's GPU build is the same module).
ENGINE_PACKAGES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",)}


def _converted_engines(pipeline: str) -> list[str]:
    models = load_pipelines()[pipeline].models
    return sorted({engine for model in models for engine in model.converted_engines()})


def _carries(image: str, pipeline: str, engine: str) -> bool:
    """Whether the image holds the engine's module and every declaring model's files converted for it."""
    paths = [
        f"/opt/hps/server/models/{model.name}/{ENGINE_FILES[engine]}"
        for model in load_pipelines()[pipeline].models
        if engine in model.engines
    ]
    module = f"python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(\"{engine}\") is None)'"
    test = " && ".join([module, *(f"test -f {path}" for path in paths)])
    done = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", test], check=False)
    return done.returncode == 0


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_golden_cases_on_each_declared_engine(request, pipeline, fixtures_dir, engine, record_property):
    if engine not in _converted_engines(pipeline):
        pytest.skip(f"no model of {pipeline} declares {engine}")
    image = conftest.image_for(request, pipeline)
    target = request.config.getoption("--hps-target")
    locked = requirements_lock.read(pip_locks.lock_path(target)).by_name()
    if not any(package in locked for package in ENGINE_PACKAGES[engine]):
        # The gpu runtime carries Paddle alone, gpu-cu12 no OpenVINO: its default run is test_goldens.
        pytest.skip(f"the {target} runtime does not carry {engine} (its lock has none of {ENGINE_PACKAGES[engine]})")
    assert _carries(image, pipeline, engine), f"{image} lacks {engine} or the files converted for it"
    endpoint = conftest.start_container(image, pipeline, env={"HPS_ENGINE": engine})
    try:
        wrapped = endpoint.container.get_wrapped_container()
        log = wrapped.logs(stdout=True, stderr=True).decode(errors="replace")
        declaring = [model.name for model in load_pipelines()[pipeline].models if engine in model.engines]
        for model in declaring:
            assert f"model {model} runs on {engine}" in log, f"{model} did not load on {engine}:\n{log[-3000:]}"
        send, close = _client_library(endpoint, "http")
        try:
            run = goldens.run(settings().pipelines_dir / pipeline, send, fixtures_dir)
        finally:
            close()
    finally:
        endpoint.container.stop()
    record_property("engine", engine)
    assert not run.failures, f"{pipeline} goldens on {engine}:\n  " + "\n  ".join(run.failures)
