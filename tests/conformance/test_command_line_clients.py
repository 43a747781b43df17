"""The command-line client each SDK bundle ships (pipelines/<Name>/client/client.py), run against the
server as a user would: over HTTP and gRPC, printing the pipeline's answer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpsforge.core.settings import PROJECT_ROOT, settings

CLIENT_SOURCE = PROJECT_ROOT / "sdk" / "client" / "src"


def _arguments(pipeline: str, fixtures_dir) -> tuple[list[str], str] | None:
    """(client.py arguments, text its output must contain) for the pipelines this project ships."""
    golden = settings().pipelines_dir / pipeline / "goldens"
    return {
        "OCR": ([str(golden / "hello_2026.png")], "Hello 2026"),
        "image_classification": ([str(golden / "textline_rot180.png"), "--topk", "1"], "  1  180"),
        "lexical_analysis": (["百度是一家高科技公司"], "百度/ORG 是/v 一家/m 高科技/n 公司/n"),
        "face_recognition": (
            ["build", f"{fixtures_dir}/portraits/obama.jpg=obama"] if fixtures_dir else [],
            '"imageCount": 1',
        ),
    }.get(pipeline)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_command_line_client_prints_the_answer(pipeline, server, fixtures_dir, protocol):
    case = _arguments(pipeline, fixtures_dir)
    if case is None:
        pytest.skip(f"no command-line check is written for {pipeline}")
    arguments, expected = case
    url = server.http if protocol == "http" else server.grpc
    script = settings().pipelines_dir / pipeline / "client" / "client.py"
    result = subprocess.run(
        [sys.executable, str(script), "--url", url, "--protocol", protocol, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(CLIENT_SOURCE)},
    )
    assert result.returncode == 0, f"client.py failed: {result.stderr[-1000:]}"
    assert expected in result.stdout, f"client.py printed:\n{result.stdout[-1000:]}"
