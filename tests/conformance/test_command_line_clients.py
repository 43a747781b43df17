"""The command-line client each SDK bundle ships (pipelines/<Name>/client/client.py), run against the
server as a user would: over HTTP and gRPC, printing the pipeline's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hpsforge.bundle import goldens
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
    }.get(pipeline) or _new_pipeline_arguments(pipeline)


def _new_pipeline_arguments(pipeline: str) -> tuple[list[str], str] | None:
    """A pipeline `nox -s new-pipeline` wrote: its seeded golden request, through its client."""
    folder = settings().pipelines_dir / pipeline
    case = goldens.load_file(folder).valid_case
    if case.name != "seeded":
        return None
    if "inputs" in case.request:  # tensor: the inputs as a JSON file; each output printed as JSON
        inputs = Path(tempfile.mkdtemp(prefix="client-inputs-")) / "inputs.json"
        inputs.write_text(json.dumps(case.request["inputs"]), encoding="utf-8")
        return [str(inputs)], f'"name": {json.dumps(case.exact.get("outputs.0.name", ""))}'
    image = str(folder / "goldens" / "seeded.png")
    if "threshold" in case.request:  # detection: the best box's class
        best = [case.exact.get(f"detectedObjects.0.{field}", "") for field in ("categoryId", "categoryName")]
        found = f"  {best[0]}  {best[1]}"
        return [image, "--threshold", str(case.request["threshold"])], found
    if "topk" not in case.request:  # ocr-like: the text read
        return [image], f"  {case.exact['text']}" if "text" in case.exact else "  "
    best = f"  {case.exact['categories.0.id']}  {case.exact['categories.0.name']}" if case.exact else "  "
    return [str(folder / "goldens" / "seeded.png"), "--topk", "1"], best


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
