"""`nox -s bench -- cpu --serving`: a smoke run of the serving benchmark (fractions of a second per
point, one configuration of each baseline, one pipeline). Only that it ran, measured every part
and wrote its files is checked: its figures are printed, never asserted."""

import json

from hpsforge import cli
from hpsforge.bench.serving.report import ServingReport

PIPELINE = "image_classification"  # the quickest to load and to answer


def test_the_serving_benchmark_runs_every_part_and_writes_its_report_and_plot(runtime_cpu, tmp_path, capsys):
    report = cli.run_bench(
        [
            "cpu",
            "--serving",
            PIPELINE,
            "--quick",
            "--seconds",
            "0.3",
            "--warmup",
            "0.2",
            "--concurrency",
            "1,2",
            "--min-requests",
            "1",
            "--output",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    text = (tmp_path / "serving.json").read_text()
    assert ServingReport.model_validate_json(text).json_text() == text  # what the models wrote, they read
    written = json.loads(text)
    assert written["pipelines"].keys() == {PIPELINE} and report is not None and report.pipelines.keys() == {PIPELINE}
    entry = written["pipelines"][PIPELINE]
    assert set(entry["cases"]) == {"golden", "large"}
    for workload in entry["cases"]:
        triton = entry["triton"][workload]
        for protocol in ("http", "grpc"):
            assert [point["concurrency"] for point in triton[protocol]] == [1, 2]
            assert all(point["requests"] > 0 and point["failed"] == 0 for point in triton[protocol])
        assert {row["stage"] for row in triton["stages"]} == {
            "decode",
            "preprocess",
            "inference",
            "postprocess",
            "encode",
        }
        assert entry["in_process"][0]["workloads"][workload]["requests"] > 0
        assert [point["concurrency"] for point in entry["flask"][0]["workloads"][workload]] == [1, 2]
        assert "in_process_best" in entry["summary"][workload] and "flask_best" in entry["summary"][workload]
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "serving benchmark (cpu" in printed and f"{PIPELINE} / golden" in printed and "inference" in printed
