"""Inputs the server runtime refuses before any pipeline code runs (sdk/server/hps_server)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "server"))

from hps_server import ServerContext, wire  # noqa: E402


@pytest.mark.parametrize("document", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}'])
def test_nan_and_infinity_are_not_json(document):
    with pytest.raises(wire.WireError) as raised:
        wire.parse_json(document)
    assert raised.value.code == 422 and "is not a JSON value" in raised.value.message


def test_results_with_nan_are_refused_not_sent():
    with pytest.raises(ValueError):
        wire.success("id", {"score": float("nan")})


def _args(tmp_path):
    (tmp_path / "model_repo" / "m").mkdir(parents=True)
    return {"model_repository": str(tmp_path / "model_repo" / "m"), "model_name": "m"}


def test_a_malformed_pipeline_config_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    (tmp_path / "pipeline.toml").write_text("[settings\n")
    with pytest.raises(ValueError, match="pipeline.toml: not valid TOML"):
        ServerContext.from_triton_args(_args(tmp_path))


@pytest.mark.parametrize("threads", ["four", "0", "-1"])
def test_bad_thread_counts_are_named(tmp_path, monkeypatch, threads):
    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    monkeypatch.setenv("HPS_CPU_THREADS", threads)
    with pytest.raises(ValueError, match="HPS_CPU_THREADS must be a positive integer"):
        ServerContext.from_triton_args(_args(tmp_path))
