"""perf_analyzer's report read back and set beside the bench's own HTTP figure; the engines a bench measures."""

from __future__ import annotations

import pytest

from hpsforge.bench.serving import perf_analyzer
from hpsforge.bench.serving.report import PerfAnalyzerPoint, Point, StageRow, TritonStatistics, TritonWorkload
from hpsforge.core.errors import HpsforgeError

# Written by tritonclient 2.51.0's perf_analyzer (-f) against the OCR image, concurrency 2.
REPORT = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
    "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
    "2,9.7983,123,427,239,38,201540,637,0,183571,302595,453918,739474\n"
)


def test_the_row_of_the_concurrency_is_read_in_milliseconds():
    point = perf_analyzer.parse_report(REPORT, 2)
    assert point == PerfAnalyzerPoint(concurrency=2, qps=9.8, p50_ms=183.57, p90_ms=302.6, p99_ms=739.47)


def test_a_report_without_the_concurrency_is_an_error():
    with pytest.raises(HpsforgeError, match="no row for concurrency 8"):
        perf_analyzer.parse_report(REPORT, 8)


def _point(qps: float) -> Point:
    return Point(
        concurrency=2,
        seconds=10.0,
        requests=100,
        failed=0,
        errors=[],
        qps=qps,
        p50_ms=180.0,
        p90_ms=300.0,
        p99_ms=700.0,
        mean_ms=200.0,
        client_cpu_s=0.1,
        server_cpu_ms=None,
    )


@pytest.mark.parametrize(("ours", "ratio"), [(9.8, 1.0), (12.25, 0.8)])
def test_the_ratio_is_perf_analyzers_qps_over_the_bench_http_qps(ours, ratio):
    workload = TritonWorkload(
        model="ocr",
        http=[_point(ours)],
        stages=list[StageRow](),
        statistics=TritonStatistics(),
        perf_analyzer=perf_analyzer.parse_report(REPORT, 2),
    )
    assert workload.perf_analyzer_ratio() == pytest.approx(ratio)
    assert (
        TritonWorkload(model="ocr", http=[_point(ours)], stages=[], statistics=TritonStatistics()).perf_analyzer_ratio()
        is None
    )


def test_engines_of_the_bench_are_checked_and_default_is_the_declared_ones():
    from hpsforge import cli
    from hpsforge.core.errors import UsageError

    assert cli._bench_engines("default") == (None,)
    assert cli._bench_engines("all") == (None, "paddle", "onnxruntime", "openvino")
    assert cli._bench_engines("openvino,default") == ("openvino", None)
    for wrong in ("tensorrt", "paddle,paddle", ""):
        with pytest.raises(UsageError, match="--engines"):
            cli._bench_engines(wrong)


def test_a_pipeline_is_measured_on_the_engines_its_models_declare(project):
    from hpsforge.bench.serving import measure

    lexical = project.pipelines["lexical_analysis"]  # LAC runs on Paddle alone
    assert measure.pipeline_engines(lexical, (None, "paddle", "openvino")) == [None, "paddle"]
    assert measure.entry_name("OCR", "openvino") == "OCR [openvino]" and measure.entry_name("OCR", None) == "OCR"
