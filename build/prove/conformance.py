"""`nox -s conformance`: run the conformance suite (tests/conformance) and print its table.

The suite starts each pipeline image with testcontainers, or checks an endpoint that is already
running (--url). The table has one row per pipeline and check: pass/fail, time, and the latency
of the golden requests.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.settings import PROJECT_ROOT

SUITE = PROJECT_ROOT / "tests" / "conformance"


def pytest_command(pipelines: list[str], report: Path, *, url: str | None = None, grpc_url: str | None = None,
                   metrics_url: str | None = None, target: str = "cpu", extra: list[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q", "-rf",
               f"--hps-report={report}", f"--hps-target={target}"]
    if pipelines:
        command.append(f"--hps-pipelines={','.join(pipelines)}")
    for option, value in (("--hps-url", url), ("--hps-grpc-url", grpc_url), ("--hps-metrics-url", metrics_url)):
        if value:
            command.append(f"{option}={value}")
    return command + list(extra)


def table(results: list[dict]) -> str:
    """pipeline x check: outcome, seconds, golden latency."""
    rows = [("pipeline", "check", "result", "time", "latency of the golden requests (median / max ms)")]
    skipped = [result for result in results if result["outcome"] == "skipped"]
    for result in results:
        if result in skipped:
            continue
        latencies = list(result.get("latency_ms", {}).values())
        latency = f"{statistics.median(latencies):.0f} / {max(latencies):.0f}" if latencies else ""
        if result.get("ready_s") is not None:
            latency = f"(container start to ready: {result['ready_s']:.1f} s)"
        rows.append((result["pipeline"], result["check"], result["outcome"].upper(),
                     f"{result['seconds']:.1f} s", latency))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for result in skipped:
        lines.append(f"skipped {result['pipeline']} / {result['check']}: {result['message']}")
    failed = [result for result in results if result["outcome"] == "failed"]
    for result in failed:
        lines.append(f"FAILED {result['pipeline']} / {result['check']}: {result['message']}")
    return "\n".join(lines)


def run(pipelines: list[str], **options) -> tuple[int, list[dict]]:
    """Run the suite; (pytest's exit code, each check's result)."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        report = Path(tmp) / "report.json"
        # pytest prints to the console as it goes; its checks bound their own waits (container start,
        # readiness, requests), and a failing check is a result, not an error.
        code = proc.run(pytest_command(pipelines, report, **options), cwd=PROJECT_ROOT, output="console",
                        timeout=None, check=False, what="the conformance suite failed").returncode
        results = json.loads(report.read_text()) if report.exists() else []
    if not results and code != 0:
        raise HpsforgeError(f"the conformance suite could not run (pytest exit {code}); see its output above")
    return code, results
