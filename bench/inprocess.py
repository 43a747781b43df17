"""In-process throughput: the same model.py work a served request does, called directly in P
processes of T Paddle threads each (no server, no network), for a fixed time.

    python3 inprocess.py --pipeline-dir /src/pipelines/OCR --goldens-module /src/build/goldens.py \
        --workload golden=hello_2026 --workload large=page --configs 1x2x1,1x1x1,2x1x1,2x1x8

A config is PROCESSESxTHREADSxBATCH: BATCH documents per call (1: one request at a time, as a
user's script would; 8: what a dynamic batch of 8 hands the pipeline). Each process first runs
every golden case (so a workload that needs saved state, such as a face index, has it, and so a
wrong answer stops the benchmark), then the workloads one after the other, every process inside
the same time window. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

SERVER_ROOT = Path(os.environ.get("HPS_SERVER_ROOT", "/opt/hps/server"))


def document_bytes(request: dict) -> bytes:
    """The request document as every client of the benchmark sends it."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _goldens(path: str):
    spec = importlib.util.spec_from_file_location("goldens", path)
    module = sys.modules["goldens"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(connection, threads: int, batch: int, options: dict) -> None:
    os.environ["HPS_CPU_THREADS"] = str(threads)
    os.environ.setdefault("HPS_LOG_REQUESTS", "0")
    from hps_server import metrics
    from hps_server.local import LocalModels

    goldens = _goldens(options["goldens_module"])
    try:
        models = LocalModels(SERVER_ROOT)
        fixtures = Path(options["fixtures"]) if options.get("fixtures") else None
        run = goldens.run(Path(options["pipeline_dir"]), models.send, fixtures)
        if run.failures:
            raise RuntimeError("golden cases failed in-process: " + "; ".join(run.failures[:5]))
        requests = {outcome.case.name: outcome for outcome in run.outcomes}
        workloads = {
            name: (requests[case].case.model, document_bytes(requests[case].request))
            for name, case in options["workloads"].items()
        }
    except Exception as error:
        connection.send({"error": f"{type(error).__name__}: {error}"})
        return
    connection.send({"ready": True})
    while True:
        message = connection.recv()
        if message is None:
            break
        model, document = workloads[message["workload"]]
        documents = [document] * batch
        start, stop = message["start"], message["stop"]
        # As a closed-loop client counts: the calls that end inside the window, whenever they began.
        # CPU time: from the first call begun inside the window to the end of the last call.
        latencies, failed, timed, cpu = [], 0, 0, None
        while True:
            sent = time.time()
            if cpu is None and sent >= start:
                metrics.reset()  # stage times of the calls begun inside the window
                times = os.times()
                cpu = -(times.user + times.system)
            answers = models.call_batch(model, documents)
            ended = time.time()
            timed += cpu is not None
            if start <= ended <= stop:
                latencies.append(ended - sent)
                failed += sum(1 for answer in answers if b'"errorCode":0' not in answer)
            if ended > stop:
                break
        times = os.times()
        cpu = (cpu or 0.0) + times.user + times.system
        stages = {
            stage: {"sum": figures["sum"], "count": figures["count"]}
            for (_, stage), figures in metrics.snapshot()["stages"].items()
        }
        connection.send({"latencies": latencies, "failed": failed, "stages": stages, "cpu_s": cpu, "cpu_calls": timed})
    models.close()


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure_config(processes: int, threads: int, batch: int, options: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for _ in range(processes):
        parent, child_end = context.Pipe()
        worker = context.Process(target=child, args=(child_end, threads, batch, options), daemon=True)
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    try:
        for pipe in pipes:
            reply = pipe.recv()
            if "error" in reply:
                raise SystemExit(json.dumps({"error": reply["error"]}))
        results = {}
        for workload in options["workloads"]:
            # Slow work (a second per call) gets one more, three times longer window when the
            # first held fewer than min_requests calls; the last window is the one reported.
            for seconds, warmup in ((options["seconds"], options["warmup"]), (3 * options["seconds"], 0.0)):
                start = time.time() + 0.2 + warmup
                stop = start + seconds
                for pipe in pipes:
                    pipe.send({"workload": workload, "start": start, "stop": stop})
                replies = [pipe.recv() for pipe in pipes]
                latencies = sorted(value for reply in replies for value in reply["latencies"])
                calls = len(latencies)
                if calls >= options["min_requests"]:
                    break
            window = stop - start
            stages: dict[str, dict] = {}
            for reply in replies:
                for stage, figures in reply["stages"].items():
                    total = stages.setdefault(stage, {"sum": 0.0, "count": 0})
                    total["sum"] += figures["sum"]
                    total["count"] += figures["count"]
            results[workload] = {
                "seconds": round(window, 3),
                "calls": calls,
                "requests": calls * batch,
                "failed": sum(reply["failed"] for reply in replies),
                "qps": calls * batch / window,
                "p50_ms": percentile(latencies, 0.5) * 1000,
                "p90_ms": percentile(latencies, 0.9) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                # CPU time per request (Paddle's threads included), whatever else runs on the machine.
                "cpu_ms": 1000
                * sum(reply["cpu_s"] for reply in replies)
                / (batch * sum(reply["cpu_calls"] for reply in replies))
                if calls
                else None,
                "stages_mean_ms": {
                    stage: 1000 * figures["sum"] / figures["count"]
                    for stage, figures in stages.items()
                    if figures["count"]
                },
            }
        return {"processes": processes, "threads": threads, "batch": batch, "workloads": results}
    finally:
        for pipe in pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(None)
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-dir", required=True)
    parser.add_argument("--goldens-module", required=True, help="build/goldens.py of the checkout")
    parser.add_argument("--fixtures", default="", help="the pipeline's extracted fixtures")
    parser.add_argument("--workload", action="append", required=True, help="NAME=CASE")
    parser.add_argument("--configs", required=True, help="PxTxB,... (processes x threads x batch)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--min-requests", type=int, default=20)
    args = parser.parse_args()
    options = {
        "pipeline_dir": args.pipeline_dir,
        "goldens_module": args.goldens_module,
        "fixtures": args.fixtures,
        "workloads": dict(item.split("=", 1) for item in args.workload),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "min_requests": args.min_requests,
    }
    configs = []
    for text in args.configs.split(","):
        processes, threads, batch = (int(part) for part in text.split("x"))
        configs.append(measure_config(processes, threads, batch, options))
        print(json.dumps(configs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"configs": configs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
