"""The conformance suite's results as `nox -s conformance` reads them and prints its table."""

from __future__ import annotations

import json

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.prove import conformance
from hpsforge.prove.conformance import CheckResult, ConformanceRun, Outcome

RESULTS = [
    CheckResult(
        pipeline="OCR",
        check="golden_cases[client-library,http]",
        outcome=Outcome.PASSED,
        seconds=2.345,
        message="",
        latency_ms={"hello": 40.0, "page": 210.4, "upside_down": 52.0},
    ),
    CheckResult(
        pipeline="OCR",
        check="ready_means_every_model_loaded",
        outcome=Outcome.PASSED,
        seconds=0.5,
        message="",
        ready_s=7.25,
    ),
    CheckResult(
        pipeline="OCR",
        check="metrics_count_requests",
        outcome=Outcome.FAILED,
        seconds=1.0,
        message="hps_requests_total did not grow",
    ),
    CheckResult(pipeline="-", check="gpu_only", outcome=Outcome.SKIPPED, seconds=0.0, message="no GPU here"),
]


def test_the_table_has_a_row_per_check_and_names_what_failed_or_was_skipped():
    lines = conformance.table(RESULTS).splitlines()
    assert lines[0].split() == [
        "pipeline",
        "check",
        "result",
        "time",
        "latency",
        "of",
        "the",
        "golden",
        "requests",
        "(median",
        "/",
        "max",
        "ms)",
    ]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["OCR", "golden_cases[client-library,http]", "PASSED", "2.3", "s", "52", "/", "210"]
    assert lines[3].split()[2:] == ["PASSED", "0.5", "s", "(container", "start", "to", "ready:", "7.2", "s)"]
    assert lines[4].split()[2:] == ["FAILED", "1.0", "s"]
    assert lines[5:] == [
        "skipped - / gpu_only: no GPU here",
        "FAILED OCR / metrics_count_requests: hps_requests_total did not grow",
    ]


def test_results_travel_from_the_suite_to_the_session_unchanged(tmp_path):
    report = tmp_path / "report.json"
    report.write_bytes(conformance.RESULTS.dump_json(RESULTS, indent=1))  # as tests/conformance/conftest.py writes
    assert json.loads(report.read_text())[2]["outcome"] == "failed"
    assert conformance.read_results(report) == RESULTS
    run = ConformanceRun(exit_code=1, results=conformance.read_results(report))
    assert not run.passed and run.failed() == [RESULTS[2]]


def test_a_report_of_another_shape_is_refused(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps([{"pipeline": "OCR", "check": "x", "outcome": "erred", "seconds": 1.0, "message": ""}])
    )
    with pytest.raises(HpsforgeError, match="not the conformance suite's report"):
        conformance.read_results(report)
