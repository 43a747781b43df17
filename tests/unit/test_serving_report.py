"""The serving benchmark's report: schema 1 read and written by the models, the summary, the table,
and bench/plot.py reading what the models write (with a stand-in matplotlib: the real one is in
the bench image only).

tests/data/serving/ holds the serving.json and the table of a real smoke run (`--quick`, one
pipeline, a "before" image), written before the report had models."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from pydantic import ValidationError

from hpsforge.bench.serving import report as serving_report
from hpsforge.bench.serving.report import Point, ServingReport, TritonRun

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA = PROJECT_ROOT / "tests" / "data" / "serving"
PIPELINE = "image_classification"


@pytest.fixture(scope="module")
def recorded() -> ServingReport:
    return ServingReport.model_validate_json((DATA / "serving.json").read_text(encoding="utf-8"))


def test_a_schema_1_report_is_written_back_byte_for_byte(recorded, tmp_path):
    assert recorded.json_text() == (DATA / "serving.json").read_text(encoding="utf-8")
    written = serving_report.write(recorded, tmp_path / "out")
    assert written == tmp_path / "out" / "serving.json"
    assert ServingReport.model_validate_json(written.read_text(encoding="utf-8")) == recorded


def test_the_table_is_the_one_the_run_printed(recorded):
    assert serving_report.table(recorded) == (DATA / "table.txt").read_text(encoding="utf-8")


def test_the_summary_is_computed_from_the_measurements(recorded):
    entry = recorded.pipelines[PIPELINE]
    for workload in entry.cases:
        assert (
            serving_report.summarize(workload, entry.in_process, entry.flask, entry.triton, entry.triton_before)
            == entry.summary[workload]
        )
    summary = entry.summary["golden"]
    assert summary.in_process_best is not None and summary.in_process_best.label == "1x2"
    assert summary.triton_http is not None and summary.triton_http.qps_c8 is None  # no c=8 point in a smoke run


def _minimal(recorded: ServingReport) -> ServingReport:
    """The recorded run as if measured with --no-in-process --no-flask, no "before", HTTP only."""
    entry = recorded.pipelines[PIPELINE]
    triton = TritonRun.of(
        {workload: measured.model_copy(update={"grpc": None}) for workload, measured in entry.triton.workloads.items()},
        entry.triton.ready_s,
    )
    summary = {workload: serving_report.summarize(workload, None, None, triton, None) for workload in entry.cases}
    lean = entry.model_copy(
        update={
            "in_process": None,
            "flask": None,
            "triton_before": None,
            "triton": triton,
            "images": entry.images.model_copy(update={"triton_before": None}),
            "summary": summary,
        }
    )
    return recorded.model_copy(update={"pipelines": {PIPELINE: lean}})


def test_what_was_not_measured_is_absent_and_what_could_not_be_had_is_null(recorded):
    written = json.loads(_minimal(recorded).json_text())
    entry = written["pipelines"][PIPELINE]
    assert set(entry) == {"images", "cases", "load", "triton", "summary"}
    assert set(entry["images"]) == {"triton", "bench"}
    assert set(entry["triton"]) == {"golden", "large", "ready_s"}
    assert "grpc" not in entry["triton"]["golden"] and entry["triton"]["golden"]["http"]
    assert entry["summary"]["golden"] == {
        "triton_http": {"qps_c8": None, "p50_c1_ms": entry["triton"]["golden"]["http"][0]["p50_ms"], "cpu_ms_c8": None},
        "triton_grpc": {"qps_c8": None, "p50_c1_ms": None, "cpu_ms_c8": None},
    }
    rows = serving_report.table(_minimal(recorded)).splitlines()
    assert sum(row.startswith(f"{PIPELINE} / ") and "stage times" not in row for row in rows) == 2  # no "before"
    assert not any(row.startswith("  in-process") for row in rows)


def test_measurements_are_checked_strictly(recorded):
    point = recorded.pipelines[PIPELINE].triton.workloads["golden"].points("http")[0].model_dump()
    assert Point.model_validate(point) == Point.model_validate_json(json.dumps(point))
    with pytest.raises(ValidationError, match="qps"):
        Point.model_validate({**point, "qps": "116.6"})  # a string is not a rate
    with pytest.raises(ValidationError, match="extra"):
        Point.model_validate({**point, "p95_ms": 1.0})  # a field the report does not know
    with pytest.raises(ValidationError):
        TritonRun.model_validate_json('{"golden": {"model": "m"}, "ready_s": 1.0}')  # a workload lacks its figures
    with pytest.raises(ValidationError):
        recorded.pipelines[PIPELINE].triton.ready_s = 0.0  # frozen


def _plot_with_a_stand_in_matplotlib(report: ServingReport, tmp_path: Path) -> np.ndarray:
    """Run bench/plot.py on the JSON the model writes; the axes it drew on (mocks)."""
    source = tmp_path / "serving.json"
    source.write_text(report.json_text(), encoding="utf-8")
    pyplot = types.ModuleType("matplotlib.pyplot")
    figure = mock.MagicMock()
    drawn: dict[str, np.ndarray] = {}

    def subplots(rows: int, columns: int, **options: object) -> tuple[mock.MagicMock, np.ndarray]:
        axes = np.empty((rows, columns), dtype=object)
        for index in np.ndindex(axes.shape):
            axes[index] = mock.MagicMock()
        drawn["axes"] = axes
        return figure, axes

    pyplot.subplots = subplots  # type: ignore[attr-defined]
    matplotlib = types.ModuleType("matplotlib")
    matplotlib.use = lambda backend: None  # type: ignore[attr-defined]
    matplotlib.pyplot = pyplot  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location("bench_plot", PROJECT_ROOT / "bench" / "plot.py")
    assert spec is not None and spec.loader is not None
    plot = importlib.util.module_from_spec(spec)
    with (
        mock.patch.dict(sys.modules, {"matplotlib": matplotlib, "matplotlib.pyplot": pyplot}),
        mock.patch.object(sys, "argv", ["plot.py", str(source), str(tmp_path / "serving.png")]),
    ):
        spec.loader.exec_module(plot)
        assert plot.main() == 0
    figure.savefig.assert_called_once_with(str(tmp_path / "serving.png"), dpi=110)
    return drawn["axes"]


def _labels(axis: mock.MagicMock) -> list[str]:
    return [call.kwargs["label"] for call in axis.plot.call_args_list + axis.axhline.call_args_list]


def test_bench_plot_reads_what_the_model_writes(recorded, tmp_path):
    axes = _plot_with_a_stand_in_matplotlib(recorded, tmp_path)
    assert [_labels(axis) for axis in axes.flat] == [
        [
            "Triton HTTP",
            "Triton gRPC",
            "Triton HTTP, before",
            "Triton gRPC, before",
            "Flask+gunicorn (-w 2)",
            "in-process (1x2)",
        ]
    ] * 2
    golden = axes.flat[0]
    http = recorded.pipelines[PIPELINE].triton.workloads["golden"].points("http")
    assert golden.plot.call_args_list[0].args == (
        [point.concurrency for point in http],
        [point.qps for point in http],
        "o-",
    )
    golden.set_title.assert_called_once_with(f"{PIPELINE}: golden (upright)", fontsize=10)


def test_bench_plot_reads_a_report_without_baselines(recorded, tmp_path):
    axes = _plot_with_a_stand_in_matplotlib(_minimal(recorded), tmp_path)
    assert [_labels(axis) for axis in axes.flat] == [["Triton HTTP"]] * 2
