"""hps_client.stages (the stage histogram read from a metrics page) and hps_client.ready (the one
readiness wait)."""

import math

import pytest
from hps_client import ready, stages
from hps_client.cli import main

EXPOSITION = """\
# HELP hps_stage_seconds_bucket requests by seconds spent in a stage, cumulative (le)
# TYPE hps_stage_seconds_bucket counter
hps_stage_seconds_bucket{le="0.001",model="ocr",stage="inference"} 0
hps_stage_seconds_bucket{le="0.01",model="ocr",stage="inference"} 50
hps_stage_seconds_bucket{le="0.1",model="ocr",stage="inference"} 100
hps_stage_seconds_bucket{le="+Inf",model="ocr",stage="inference"} 100
hps_stage_seconds_bucket{le="0.001",model="ocr",stage="decode"} 100
hps_stage_seconds_bucket{le="+Inf",model="ocr",stage="decode"} 100
# TYPE hps_stage_seconds_sum counter
hps_stage_seconds_sum{model="ocr",stage="inference"} 2.5
hps_stage_seconds_sum{model="ocr",stage="decode"} 0.05
# TYPE hps_stage_seconds_count counter
hps_stage_seconds_count{model="ocr",stage="inference"} 100
hps_stage_seconds_count{model="ocr",stage="decode"} 100
nv_inference_request_success{model="ocr",version="1"} 100
"""


def test_the_histograms_are_read_per_model_and_stage():
    found = stages.parse(EXPOSITION)
    assert set(found) == {("ocr", "inference"), ("ocr", "decode")}
    inference = found[("ocr", "inference")]
    assert inference.count == 100 and inference.sum == 2.5
    assert inference.buckets == {0.001: 0, 0.01: 50, 0.1: 100, math.inf: 100}


def test_percentiles_are_interpolated_inside_their_bucket():
    inference = stages.parse(EXPOSITION)[("ocr", "inference")]
    assert inference.quantile(0.5) == pytest.approx(0.01)
    assert inference.quantile(0.25) == pytest.approx(0.001 + 0.009 * 0.5)
    assert inference.quantile(0.99) == pytest.approx(0.01 + 0.09 * 0.98)


def test_the_summary_is_in_request_order_and_a_difference_is_per_interval():
    before = stages.parse(EXPOSITION.replace(" 100\n", " 60\n").replace("} 50\n", "} 30\n"))
    rows = stages.summary(stages.difference(stages.parse(EXPOSITION), before))
    assert [row["stage"] for row in rows] == ["decode", "inference"]
    assert rows[1]["requests"] == 40 and rows[1]["mean_ms"] == pytest.approx(0.0)  # the sums did not change
    text = stages.table(stages.summary(stages.parse(EXPOSITION)))
    assert "inference" in text and "25.00" in text and "(all)" in text


def test_the_stages_command_reads_a_metrics_page(capsys, monkeypatch):
    monkeypatch.setattr(stages, "scrape", lambda address, timeout=10.0: EXPOSITION)
    assert main(["stages", "--metrics-url", "127.0.0.1:1"]) == 0
    assert "ocr" in capsys.readouterr().out
    monkeypatch.setattr(stages, "scrape", lambda address, timeout=10.0: "")
    assert main(["stages"]) == 1


def test_the_stages_command_says_when_the_server_cannot_be_reached(capsys, refused_url):
    assert main(["stages", "--metrics-url", refused_url]) == 2
    assert "cannot read metrics" in capsys.readouterr().err


@pytest.fixture
def refused_url():
    import socket

    with socket.socket() as sock:  # bound, not listening: connecting is refused at once
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_wait_until_returns_the_seconds_it_took():
    answers = iter([False, False, True])
    assert ready.wait_until(lambda: next(answers), timeout=5, interval=0.01) >= 0


def test_wait_until_stops_when_the_server_is_gone_or_the_time_is_up():
    with pytest.raises(ready.NotReadyError) as gone:
        ready.wait_until(lambda: False, timeout=5, interval=0.01, alive=lambda: False, what="ocr")
    assert gone.value.reason == "exited" and "ocr exited before it was ready" in str(gone.value)
    with pytest.raises(ready.NotReadyError) as late:
        ready.wait_until(lambda: False, timeout=0.05, interval=0.01)
    assert late.value.reason == "timeout" and late.value.attempts >= 2


def test_http_ready_is_false_when_nothing_answers(refused_url):
    assert ready.http_ready(refused_url) is False
