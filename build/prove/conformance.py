"""`nox -s conformance`: run the conformance suite (tests/conformance) and print its table.

The suite starts each pipeline image with testcontainers, or checks an endpoint that is already
running (--url). The table has one row per pipeline and check: pass/fail, time, and the latency
of the golden requests.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.settings import PROJECT_ROOT

SUITE = PROJECT_ROOT / "tests" / "conformance"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckResult(BaseModel):
    """One check of one pipeline, as the suite reports it (tests/conformance/conftest.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    pipeline: str  # "-" for a check of no one pipeline
    check: str  # the test's name without test_, its parameters in brackets
    outcome: Outcome
    seconds: float
    message: str  # why it failed or was skipped
    latency_ms: dict[str, float] = {}  # golden case -> milliseconds
    ready_s: float | None = None  # container start to ready, when the check measured it


RESULTS = TypeAdapter(list[CheckResult])


class ConformanceRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    exit_code: int  # pytest's
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if result.outcome is Outcome.FAILED]


def pytest_command(
    pipelines: list[str],
    report: Path,
    *,
    url: str | None = None,
    grpc_url: str | None = None,
    metrics_url: str | None = None,
    target: str = "cpu",
    extra: Sequence[str] = (),
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rf",
        f"--hps-report={report}",
        f"--hps-target={target}",
    ]
    if pipelines:
        command.append(f"--hps-pipelines={','.join(pipelines)}")
    for option, value in (("--hps-url", url), ("--hps-grpc-url", grpc_url), ("--hps-metrics-url", metrics_url)):
        if value:
            command.append(f"{option}={value}")
    return command + list(extra)


def table(results: Sequence[CheckResult]) -> str:
    """pipeline x check: outcome, seconds, golden latency."""
    rows = [("pipeline", "check", "result", "time", "latency of the golden requests (median / max ms)")]
    for result in results:
        if result.outcome is Outcome.SKIPPED:
            continue
        latencies = list(result.latency_ms.values())
        latency = f"{statistics.median(latencies):.0f} / {max(latencies):.0f}" if latencies else ""
        if result.ready_s is not None:
            latency = f"(container start to ready: {result.ready_s:.1f} s)"
        rows.append((result.pipeline, result.check, result.outcome.upper(), f"{result.seconds:.1f} s", latency))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [
        f"skipped {result.pipeline} / {result.check}: {result.message}"
        for result in results
        if result.outcome is Outcome.SKIPPED
    ]
    lines += [
        f"FAILED {result.pipeline} / {result.check}: {result.message}"
        for result in results
        if result.outcome is Outcome.FAILED
    ]
    return "\n".join(lines)


def read_results(path: Path) -> list[CheckResult]:
    try:
        return RESULTS.validate_json(path.read_bytes())
    except ValidationError as error:
        raise HpsforgeError(f"{path}: not the conformance suite's report ({error.errors()[0]['msg']})") from None


def run(
    pipelines: list[str],
    *,
    url: str | None = None,
    grpc_url: str | None = None,
    metrics_url: str | None = None,
    target: str = "cpu",
    extra: Sequence[str] = (),
) -> ConformanceRun:
    """Run the suite (on the pipeline images of `target`, or the server at `url`); pytest's exit code
    and each check's result."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        report = Path(tmp) / "report.json"
        command = pytest_command(
            pipelines, report, url=url, grpc_url=grpc_url, metrics_url=metrics_url, target=target, extra=extra
        )
        # pytest prints to the console as it goes; its checks bound their own waits (container start,
        # readiness, requests), and a failing check is a result, not an error.
        code = proc.run(
            command, cwd=PROJECT_ROOT, output="console", timeout=None, check=False, what="the conformance suite failed"
        ).returncode
        results = read_results(report) if report.exists() else []
    if not results and code != 0:
        raise HpsforgeError(f"the conformance suite could not run (pytest exit {code}); see its output above")
    return ConformanceRun(exit_code=code, results=results)
