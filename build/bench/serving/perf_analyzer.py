"""Triton's own load generator, perf_analyzer, run against a bench's Triton container to cross-check
bench/loadgen.py's figures at the same concurrency.

perf_analyzer comes from lock/requirements/perf-analyzer.txt (bench/perf-analyzer.in says why that
wheel), installed with --require-hashes into a host virtualenv of its own; it runs on the host inside
the server container's network namespace (nsenter), so its requests take the loadgen's path, with no
port proxy in the way.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from python_on_whales import docker

from hpsforge.bench.serving.report import PerfAnalyzerPoint
from hpsforge.core import proc
from hpsforge.core.config import EngineConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import sha256_file
from hpsforge.images import engine
from hpsforge.inputs.store import cache_root
from hpsforge.locks import pip_locks

LIBB64 = "libb64-0d"  # perf_analyzer links libb64.so.0d
INSTALL_TIMEOUT_S = 600.0
CUDA_RUNTIME_LIBRARIES = "nvidia/cuda_runtime/lib"  # libcudart.so.12, which perf_analyzer links
INPUT_NAME = "input"  # every hps_server JSON endpoint: one BYTES input, one BYTES output


class UnstableError(HpsforgeError):
    """perf_analyzer's windows never agreed (a loaded machine): no figure, not a failed bench."""


def install(config: EngineConfig) -> Path:
    """perf_analyzer from its lock, in a virtualenv named by the lock's hash (made whole, then renamed
    into place); its path."""
    engine.install_tool(config, LIBB64)
    lock = pip_locks.lock_path(pip_locks.PERF_ANALYZER)
    if not lock.exists():
        raise HpsforgeError(
            f"{lock} is missing", hint=f"lock it with `{pip_locks.refresh_command(pip_locks.PERF_ANALYZER)}`"
        )
    home = cache_root() / "tools" / f"perf-analyzer-{sha256_file(lock)[:16]}"
    binary = home / "bin" / "perf_analyzer"
    if binary.exists():
        return binary
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"hpsforge: installing perf_analyzer from {lock.name} into {home}", flush=True)
    with tempfile.TemporaryDirectory(prefix=".perf-analyzer-", dir=home.parent) as tmp:
        staging = Path(tmp) / "target"
        proc.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--require-hashes",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--target",
                staging,
                "-r",
                lock,
            ],
            what=f"cannot install {lock.name} (hash-checked) for perf_analyzer",
            timeout=INSTALL_TIMEOUT_S,
        )
        if not (staging / "bin" / "perf_analyzer").is_file():
            raise HpsforgeError(f"{lock.name} installed no bin/perf_analyzer (is tritonclient's wheel in it?)")
        os.replace(staging, home)
    return binary


def measure(
    binary: Path,
    container: str,
    model: str,
    document: Path,
    concurrency: int,
    seconds: float,
    port: int = 8000,
    stability_percent: int = 50,
) -> PerfAnalyzerPoint:
    """perf_analyzer over HTTP at one concurrency, sending `document` (one request's JSON) to `model`
    from inside `container`'s network namespace; its throughput and latency percentiles."""
    pid = docker.container.inspect(container).state.pid
    if not pid:
        raise HpsforgeError(f"perf_analyzer: the container {container} is not running")
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        work = Path(tmp)
        data = work / "input-data.json"
        content = document.read_text(encoding="utf-8")
        data.write_text(json.dumps({"data": [{INPUT_NAME: {"content": [content], "shape": [1]}}]}), encoding="utf-8")
        report = work / "report.csv"
        window_ms = max(1000, int(seconds * 1000))
        result = proc.run(
            [
                "nsenter",
                "-t",
                str(pid),
                "-n",
                binary,
                "-m",
                model,
                "-u",
                f"127.0.0.1:{port}",
                "-i",
                "http",
                "--concurrency-range",
                f"{concurrency}:{concurrency}",
                "--input-data",
                data,
                "--measurement-interval",
                str(window_ms),
                # Three windows within 25% of each other: this shared 2-core machine varies more than
                # perf_analyzer's default 10% allows, and a run that never settles reports nothing.
                "--stability-percentage",
                "25",
                "--max-trials",
                "6",
                "-f",
                report,
            ],
            what=f"perf_analyzer against {model} failed",
            timeout=seconds * 12 + 120,
            output="merge",
            env={**os.environ, "LD_LIBRARY_PATH": str(binary.parent.parent / CUDA_RUNTIME_LIBRARIES)},
            check=False,
        )
        if "Failed to obtain stable measurement" in result.stdout:
            raise UnstableError(
                f"perf_analyzer against {model}: no 3 windows within {stability_percent}% of each other in 10 "
                f"(its last lines: {' / '.join(result.stdout.strip().splitlines()[-3:])})"
            )
        if not report.exists():
            raise HpsforgeError(
                f"perf_analyzer against {model} wrote no report (exit {result.returncode}); "
                f"the end of its output:\n{result.stdout[-1500:]}"
            )
        return parse_report(report.read_text(encoding="utf-8"), concurrency)


def parse_report(text: str, concurrency: int) -> PerfAnalyzerPoint:
    """perf_analyzer's CSV report (-f): the row of `concurrency`; latencies are in microseconds."""
    for row in csv.DictReader(io.StringIO(text)):
        if int(row["Concurrency"]) == concurrency:
            return PerfAnalyzerPoint(
                concurrency=concurrency,
                qps=round(float(row["Inferences/Second"]), 2),
                p50_ms=round(int(row["p50 latency"]) / 1000, 2),
                p90_ms=round(int(row["p90 latency"]) / 1000, 2),
                p99_ms=round(int(row["p99 latency"]) / 1000, 2),
            )
    raise HpsforgeError(f"perf_analyzer's report has no row for concurrency {concurrency}:\n{text[:400]}")
