"""hps_server.engines: which engine a model runs on (declared default, deployment overrides), the
engine settings, and where each engine's files are. The engines themselves run in the pipeline
images (tests/engine/test_engines_parity.py, `python -m hps_server.parity`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "sdk" / "server"))

from hps_server import ServerContext, engines  # noqa: E402
from hps_server.engines import Declared, EngineError, EngineSettings, choose  # noqa: E402

ALL = Declared(("paddle", "onnxruntime", "openvino"), "openvino")
PADDLE_ONLY = Declared()


def test_variable_names_the_model_in_upper_case():
    assert engines.variable("text_detection") == "HPS_ENGINE_TEXT_DETECTION"
    assert engines.variable("face-model.v2") == "HPS_ENGINE_FACE_MODEL_V2"


def test_the_declared_default_without_overrides():
    assert choose("det", ALL, {}) == ("openvino", "its default")
    assert choose("lac", PADDLE_ONLY, {}) == ("paddle", "its default")


def test_the_deployment_wide_override_applies_to_models_declaring_it():
    assert choose("det", ALL, {"HPS_ENGINE": "onnxruntime"}) == ("onnxruntime", "HPS_ENGINE")
    engine, why = choose("lac", PADDLE_ONLY, {"HPS_ENGINE": "onnxruntime"})
    assert engine == "paddle" and "not one of its engines" in why


def test_the_model_override_wins_over_the_deployment_wide_one():
    environ = {"HPS_ENGINE": "onnxruntime", "HPS_ENGINE_DET": "paddle"}
    assert choose("det", ALL, environ) == ("paddle", "HPS_ENGINE_DET")
    assert choose("rec", ALL, environ) == ("onnxruntime", "HPS_ENGINE")


def test_a_model_override_the_model_does_not_declare_is_an_error_naming_both():
    with pytest.raises(EngineError) as caught:
        choose("lac", PADDLE_ONLY, {"HPS_ENGINE_LAC": "openvino"})
    assert "HPS_ENGINE_LAC=openvino" in str(caught.value)
    assert "'lac'" in str(caught.value) and "'openvino'" in str(caught.value)


@pytest.mark.parametrize("variable", ["HPS_ENGINE", "HPS_ENGINE_DET"])
def test_an_unknown_engine_is_an_error(variable):
    with pytest.raises(EngineError, match="unknown engine for model 'det'"):
        choose("det", ALL, {variable: "tensorrt"})


def test_a_default_that_cannot_run_here_falls_back_to_paddle():
    # The gpu-cu118 runtime carries Paddle alone; its image-classification model defaults to ONNX Runtime.
    engine, why = choose("det", ALL, {}, available=("paddle",))
    assert engine == "paddle" and "openvino cannot run here" in why


@pytest.mark.parametrize("variable", ["HPS_ENGINE", "HPS_ENGINE_DET"])
def test_an_override_naming_an_engine_that_cannot_run_here_is_an_error(variable):
    with pytest.raises(EngineError, match=f"{variable}=onnxruntime: engine 'onnxruntime' cannot run here"):
        choose("det", ALL, {variable: "onnxruntime"}, available=("paddle", "openvino"))


def test_a_gpu_instance_runs_paddle_only_without_onnx_runtimes_cuda_provider(monkeypatch):
    monkeypatch.setattr(engines, "_onnxruntime_has_cuda", lambda: False)
    assert engines.available_engines("gpu") == ("paddle",)
    assert "paddle" in engines.available_engines("cpu")


def test_on_a_gpu_with_onnx_runtimes_cuda_provider_the_default_falls_back_to_it(monkeypatch):
    monkeypatch.setattr(engines, "_onnxruntime_has_cuda", lambda: True)
    available = engines.available_engines("gpu")
    assert available == ("paddle", "onnxruntime")
    assert choose("det", ALL, {}, available=available, device="gpu") == (
        "onnxruntime",
        "its default openvino cannot run here, so ONNX Runtime on the GPU",
    )
    assert choose("lac", PADDLE_ONLY, {}, available=available, device="gpu") == ("paddle", "its default")
    # on a CPU instance of the same image (no OpenVINO there), Paddle, the reference, stays the fallback
    assert choose("det", ALL, {}, available=("paddle", "onnxruntime"), device="cpu") == (
        "paddle",
        "its default openvino cannot run here, so Paddle, the reference",
    )


def test_onnx_runtime_sessions_put_the_cuda_provider_on_the_instances_gpu_first():
    cuda_first = [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert engines.onnxruntime_providers("gpu", 1) == cuda_first
    assert engines.onnxruntime_providers("cpu", 0) == ["CPUExecutionProvider"]


def test_blank_overrides_are_no_overrides():
    assert choose("det", ALL, {"HPS_ENGINE": " ", "HPS_ENGINE_DET": ""}) == ("openvino", "its default")


def test_declared_from_a_pipeline_toml_entry():
    assert Declared.from_entry(None) == PADDLE_ONLY
    assert Declared.from_entry({"name": "x", "files": {}}) == PADDLE_ONLY
    entry = {"name": "x", "engines": ["paddle", "openvino"], "engine": "openvino"}
    assert Declared.from_entry(entry) == Declared(("paddle", "openvino"), "openvino")


def test_settings_defaults_and_overrides():
    assert EngineSettings.from_environ({}) == EngineSettings("all", "LATENCY", "f32")
    environ = {
        "HPS_ORT_GRAPH_OPTIMIZATION": "basic",
        "HPS_OPENVINO_HINT": "THROUGHPUT",
        "HPS_OPENVINO_PRECISION": "bf16",
    }
    assert EngineSettings.from_environ(environ) == EngineSettings("basic", "THROUGHPUT", "bf16")


@pytest.mark.parametrize(
    "name, value",
    [("HPS_ORT_GRAPH_OPTIMIZATION", "max"), ("HPS_OPENVINO_HINT", "latency"), ("HPS_OPENVINO_PRECISION", "int8")],
)
def test_a_bad_setting_is_an_error_naming_it(name, value):
    with pytest.raises(EngineError) as caught:
        EngineSettings.from_environ({name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)


def test_paddle_files_finds_the_one_pair(tmp_path):
    for name in ("inference.pdmodel", "inference.pdiparams", "keys.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert engines.paddle_files(tmp_path) == (tmp_path / "inference.pdmodel", tmp_path / "inference.pdiparams")
    (tmp_path / "other.json").write_bytes(b"x")
    (tmp_path / "other.pdiparams").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="found 2"):
        engines.paddle_files(tmp_path)


def test_converted_files_are_under_the_engine_folder(tmp_path):
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "model.onnx").write_bytes(b"x")
    assert engines.converted_file(tmp_path, "onnxruntime") == tmp_path / "onnxruntime" / "model.onnx"
    with pytest.raises(FileNotFoundError) as caught:
        engines.converted_file(tmp_path, "openvino")
    assert str(tmp_path / "openvino" / "model.xml") in str(caught.value)


def test_the_context_reads_each_models_declaration(tmp_path, monkeypatch):
    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    root = tmp_path / "srv"
    (root / "model_repo" / "ocr").mkdir(parents=True)
    (root / "pipeline.toml").write_text(
        'description = "x"\n[[models]]\nname = "det"\nengines = ["paddle", "openvino"]\nengine = "openvino"\n'
        '[models.files]\n"a.pdmodel" = "00"\n',
        encoding="utf-8",
    )
    args = {"model_repository": str(root / "model_repo" / "ocr"), "model_name": "ocr", "model_version": "1"}
    context = ServerContext.from_triton_args(args)
    assert Declared.from_entry(context.models.get("det")) == Declared(("paddle", "openvino"), "openvino")
    assert Declared.from_entry(context.models.get("rec")) == PADDLE_ONLY


def test_loading_with_an_undeclared_override_fails_before_any_engine_starts(tmp_path, monkeypatch):
    (tmp_path / "models" / "lac").mkdir(parents=True)
    context = ServerContext(root=tmp_path, model_name="lexical-analysis", threads=1, models={"lac": {"name": "lac"}})
    monkeypatch.setenv("HPS_ENGINE_LAC", "onnxruntime")
    with pytest.raises(EngineError, match="does not declare engine 'onnxruntime'"):
        context.predictor("lac")


def test_a_run_is_seen_by_observers_and_removal_stops_it():
    import numpy as np

    seen = []
    predictor = engines.Predictor("m", "paddle", lambda batch: batch * 2)
    remove = engines.observe(lambda *args: seen.append(args))
    try:
        out = predictor.run(np.ones((1, 2), np.float32))
    finally:
        remove()
    predictor.run(np.ones((1, 2), np.float32))
    assert out.tolist() == [[2.0, 2.0]]
    assert len(seen) == 1 and seen[0][:2] == ("m", "paddle")
