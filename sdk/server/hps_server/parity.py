"""Parity: every declared engine of every model against Paddle, on the inputs of the golden cases.

    python -m hps_server.parity --pipeline-dir /src/pipelines/OCR --goldens-module /src/goldens.py

Run inside a pipeline image (HPS_SERVER_ROOT, default /opt/hps/server). Steps:
  1. the golden cases on Paddle (every model forced to it), recording what each model is fed and
     what Paddle answers (hps_server.engines.observe);
  2. per model and converted engine: the same inputs through that engine, the largest absolute
     difference of its raw output from Paddle's, against the model's `tolerance`;
  3. per converted engine: the golden cases again with HPS_ENGINE=<engine> (every model declaring
     it runs on it): whether each case still passes, and whether the answers are Paddle's
     (strings, integers and list lengths equal: for OCR the texts and boxes; numbers within 1e-2).
Prints one JSON document (schema 1) on stdout; logs go to stderr. Exit 0 whatever it found: the
caller judges (hpsforge's prove/parity.py refuses a default engine that fails).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from hps_server import engines
from hps_server.context import PIPELINE_CONFIG, ServerContext

SERVER_ROOT = Path(os.environ.get("HPS_SERVER_ROOT", "/opt/hps/server"))
ANSWER_NUMBER_TOLERANCE = 1e-2
MAX_LISTED = 10


def _goldens(path: str):
    spec = importlib.util.spec_from_file_location("goldens", path)
    module = sys.modules["goldens"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declarations(root: Path) -> dict[str, dict]:
    with open(root / PIPELINE_CONFIG, "rb") as stream:
        return {entry["name"]: entry for entry in tomllib.load(stream).get("models", [])}


def _clear_overrides() -> None:
    for name in [name for name in os.environ if name.startswith(engines.ENGINE_VARIABLE)]:
        del os.environ[name]


def _run_goldens(goldens, pipeline_dir: Path, fixtures: Path | None, engine: str):
    """The golden cases with every model that declares `engine` on it: (run, answers by case)."""
    from hps_server.local import LocalModels

    _clear_overrides()
    os.environ[engines.ENGINE_VARIABLE] = engine
    models = LocalModels(SERVER_ROOT)
    try:
        run = goldens.run(pipeline_dir, models.send, fixtures)
    finally:
        models.close()
        _clear_overrides()
    # The logId is drawn per request: everything else of the envelope is the answer.
    answers = {outcome.case.name: {key: value for key, value in outcome.envelope.items() if key != "logId"}
               for outcome in run.outcomes}
    return run, answers


def differences(reference: Any, other: Any, path: str = "") -> tuple[list[str], float]:
    """Paths where two answers differ (strings, integers, booleans, lengths, keys, or numbers
    beyond ANSWER_NUMBER_TOLERANCE), and the largest difference of their floating-point numbers."""
    if isinstance(reference, dict) and isinstance(other, dict):
        if set(reference) != set(other):
            return [f"{path or '.'}: keys {sorted(set(reference) ^ set(other))}"], 0.0
        found, largest = [], 0.0
        for key in reference:
            paths, diff = differences(reference[key], other[key], f"{path}.{key}" if path else str(key))
            found += paths
            largest = max(largest, diff)
        return found, largest
    if isinstance(reference, list) and isinstance(other, list):
        if len(reference) != len(other):
            return [f"{path}: {len(reference)} items on paddle, {len(other)}"], 0.0
        found, largest = [], 0.0
        for index, (a, b) in enumerate(zip(reference, other)):
            paths, diff = differences(a, b, f"{path}.{index}")
            found += paths
            largest = max(largest, diff)
        return found, largest
    if isinstance(reference, float) or isinstance(other, float):
        if isinstance(reference, (int, float)) and isinstance(other, (int, float)) \
                and not isinstance(reference, bool) and not isinstance(other, bool):
            diff = abs(float(reference) - float(other))
            return ([f"{path}: {reference} on paddle, {other}"] if diff > ANSWER_NUMBER_TOLERANCE else []), diff
    if reference != other:
        return [f"{path}: {reference!r} on paddle, {other!r}"], 0.0
    return [], 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hps_server.parity")
    parser.add_argument("--pipeline-dir", required=True, type=Path)
    parser.add_argument("--goldens-module", required=True)
    parser.add_argument("--fixtures", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("HPS_LOG_REQUESTS", "0")
    os.environ["HPS_CPU_THREADS"] = str(args.threads)
    goldens = _goldens(args.goldens_module)
    declared = _declarations(SERVER_ROOT)

    # 1. Paddle, recording each model's inputs and outputs.
    recorded: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in declared}

    def record(model: str, engine: str, batch: np.ndarray, output: np.ndarray) -> None:
        if engine == engines.REFERENCE and model in recorded:
            recorded[model].append((np.array(batch, copy=True), np.array(output, copy=True)))

    remove = engines.observe(record)
    try:
        reference_run, reference_answers = _run_goldens(goldens, args.pipeline_dir, args.fixtures, engines.REFERENCE)
    finally:
        remove()

    # 2. Raw outputs per model and engine.
    context = ServerContext(root=SERVER_ROOT, model_name="parity", threads=args.threads, models=declared)
    models = []
    for name, entry in declared.items():
        declaration = engines.Declared.from_entry(entry)
        rows = []
        for engine in declaration.engines:
            if engine == engines.REFERENCE:
                continue
            row: dict[str, Any] = {"engine": engine, "inputs": len(recorded[name]), "max_abs_diff": None, "error": None}
            try:
                predictor = engines.create(context, name, engine)
                largest = 0.0
                for batch, expected in recorded[name]:
                    got = predictor.run(batch)
                    if got.shape != expected.shape:
                        raise ValueError(f"output shape {list(got.shape)} on {engine}, {list(expected.shape)} on paddle")
                    largest = max(largest, float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0)
                row["max_abs_diff"] = largest
            except Exception as error:  # reported per engine: one engine's failure hides no other
                row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
        models.append({"model": name, "engines": list(declaration.engines), "default": declaration.default,
                       "tolerance": entry.get("tolerance"), "results": rows})

    # 3. The golden cases on each converted engine, and their answers against Paddle's.
    pipeline_runs = [{"engine": engines.REFERENCE, "cases": len(reference_run.outcomes),
                      "failures": list(reference_run.failures), "differing_cases": {}, "max_number_diff": 0.0}]
    converted = sorted({engine for entry in declared.values()
                        for engine in engines.Declared.from_entry(entry).engines if engine != engines.REFERENCE})
    for engine in converted:
        try:
            run, answers = _run_goldens(goldens, args.pipeline_dir, args.fixtures, engine)
        except Exception as error:
            pipeline_runs.append({"engine": engine, "cases": 0, "failures": [f"{type(error).__name__}: {error}"],
                                  "differing_cases": {}, "max_number_diff": None})
            continue
        differing, largest = {}, 0.0
        for case, envelope in answers.items():
            paths, diff = differences(reference_answers.get(case), envelope)
            largest = max(largest, diff)
            if paths:
                differing[case] = paths[:MAX_LISTED]
        pipeline_runs.append({"engine": engine, "cases": len(run.outcomes), "failures": list(run.failures),
                              "differing_cases": differing, "max_number_diff": largest})
    json.dump({"schema": 1, "models": models, "pipeline": pipeline_runs}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
