"""prove/parity.py: a default engine that fails parity is refused (ExitCode.PARITY) naming model,
engine and difference; other engines are only reported. The measurement itself runs in the
pipeline image (`python -m hps_server.parity`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpsforge.core.errors import ExitCode, ParityError
from hpsforge.prove import parity

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "server"))
from hps_server.parity import differences


def _report(default: str = "openvino", diff: float = 1.6e-4, failures: list[str] | None = None) -> parity.ParityReport:
    results = [
        parity.EngineResult(engine="onnxruntime", inputs=5, max_abs_diff=1.2e-4, error=None),
        parity.EngineResult(engine="openvino", inputs=5, max_abs_diff=diff, error=None),
    ]
    model = parity.ModelParity(
        model="text_recognition",
        engines=["paddle", "onnxruntime", "openvino"],
        default=default,
        tolerance=2e-3,
        results=results,
    )
    runs = [
        parity.PipelineRun(engine=engine, cases=5, failures=[], differing_cases={}, max_number_diff=0.0)
        for engine in ("paddle", "onnxruntime")
    ] + [
        parity.PipelineRun(
            engine="openvino", cases=5, failures=failures or [], differing_cases={}, max_number_diff=1e-6
        )
    ]
    return parity.ParityReport(pipeline="OCR", image="img", models=[model], runs=runs)


def test_a_passing_default_is_accepted_and_tabled():
    report = _report()
    parity.judge(report)
    text = parity.table(report)
    assert "text_recognition" in text and "1.60e-04" in text and "pass (default)" in text


def test_a_default_over_tolerance_is_refused_naming_model_engine_and_difference():
    with pytest.raises(ParityError) as caught:
        parity.judge(_report(diff=3.4e-2))
    assert caught.value.exit_code == ExitCode.PARITY == 13
    message = str(caught.value)
    assert "'text_recognition'" in message and "'openvino'" in message and "0.034" in message


def test_a_non_default_over_tolerance_is_reported_not_refused():
    report = _report(default="onnxruntime", diff=3.4e-2)
    parity.judge(report)
    assert "over tolerance" in parity.table(report)


def test_goldens_failing_on_a_default_engine_are_refused():
    with pytest.raises(ParityError, match="golden cases fail on engine 'openvino'"):
        parity.judge(_report(failures=["hello_2026: rec_texts differs"]))


def test_answer_differences_ignore_small_numbers_but_not_texts_or_boxes():
    paddle = {"result": {"rec_texts": ["Hello 2026"], "rec_boxes": [[24, 30, 184, 61]], "rec_scores": [0.9981]}}
    close = {"result": {"rec_texts": ["Hello 2026"], "rec_boxes": [[24, 30, 184, 61]], "rec_scores": [0.9979]}}
    other = {"result": {"rec_texts": ["Hello2026"], "rec_boxes": [[24, 30, 185, 61]], "rec_scores": [0.9981]}}
    paths, largest = differences(paddle, close)
    assert paths == [] and largest == pytest.approx(2e-4)
    paths, _ = differences(paddle, other)
    assert paths == [
        "result.rec_texts.0: 'Hello 2026' on paddle, 'Hello2026'",
        "result.rec_boxes.0.2: 184 on paddle, 185",
    ]
