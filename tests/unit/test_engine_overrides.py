"""`serve`/`deploy --engine`: the variables hps_server reads, checked against pipeline.toml first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpsforge.core.errors import ExitCode, UsageError
from hpsforge.core.project import Project
from hpsforge.ship import deploy, engines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "server"))
from hps_server import engines as server_engines


@pytest.fixture(scope="module")
def pipelines():
    return Project.load().pipelines


def test_every_model_declaring_the_engine(pipelines):
    assert engines.overrides("OCR", pipelines["OCR"], ["openvino"]) == {"HPS_ENGINE": "openvino"}


def test_one_model(pipelines):
    values = ["paddle", "text_recognition=onnxruntime"]
    assert engines.overrides("OCR", pipelines["OCR"], values) == {
        "HPS_ENGINE": "paddle",
        "HPS_ENGINE_TEXT_RECOGNITION": "onnxruntime",
    }


def test_the_variable_is_the_one_the_server_reads():
    for model in ("text_detection", "lac", "face-model.v2"):
        assert engines.variable(model) == server_engines.variable(model)
    assert engines.ENGINES == server_engines.ENGINES


@pytest.mark.parametrize(
    "pipeline, value, words",
    [
        ("OCR", "tensorrt", ["unknown engine 'tensorrt'"]),
        ("lexical_analysis", "openvino", ["no model of pipeline lexical_analysis", "'openvino'"]),
        ("lexical_analysis", "lac=onnxruntime", ["model 'lac' does not declare engine 'onnxruntime'"]),
        ("OCR", "text_spotting=openvino", ["pipeline OCR has no model 'text_spotting'"]),
    ],
)
def test_a_bad_choice_is_a_usage_error_naming_it(pipelines, pipeline, value, words):
    with pytest.raises(UsageError) as caught:
        engines.overrides(pipeline, pipelines[pipeline], [value])
    assert caught.value.exit_code == ExitCode.USAGE
    for word in words:
        assert word in str(caught.value)


def test_deploy_manifests_carry_the_variables(pipelines):
    image = "registry.example/hpsforge/ocr-cpu@sha256:" + "a" * 64
    chosen = {"HPS_ENGINE_TEXT_DETECTION": "onnxruntime"}
    files = deploy.render("OCR", pipelines["OCR"], "cpu", image, ("kubernetes",), "cmd", None, chosen)
    assert "name: HPS_ENGINE_TEXT_DETECTION\n" in files["kubernetes/deployment.yaml"]
    assert (
        "HPS_ENGINE"
        not in deploy.render("OCR", pipelines["OCR"], "cpu", image, ("kubernetes",), "cmd")[
            "kubernetes/deployment.yaml"
        ]
    )
