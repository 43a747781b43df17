"""Parity: each declared engine's raw outputs against Paddle's on the golden inputs, and the golden
cases on each engine, measured inside the pipeline image (`python -m hps_server.parity`).

A model's default engine must pass (every input run, the largest difference within the model's
`tolerance`, the golden cases passing with it): else ParityError (ExitCode.PARITY) names the model,
the engine and the difference, and `images` records nothing. Other engines are reported, not
refused. The report: output/parity/<pipeline>.json, printed as a table.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bundle import goldens
from hpsforge.core.errors import HpsforgeError, ParityError
from hpsforge.core.files import atomic_write_text
from hpsforge.core.pipelines import REFERENCE_ENGINE, Pipeline
from hpsforge.core.settings import PROJECT_ROOT, settings
from hpsforge.inputs import model_files
from hpsforge.inputs.store import cache_root


class EngineResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str
    inputs: int  # how many recorded model inputs were run
    max_abs_diff: float | None  # None when the engine could not run them (error)
    error: str | None


class ModelParity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    engines: list[str]
    default: str
    tolerance: float | None
    results: list[EngineResult]

    def passes(self, result: EngineResult) -> bool:
        return (
            result.error is None
            and result.inputs > 0
            and result.max_abs_diff is not None
            and self.tolerance is not None
            and result.max_abs_diff <= self.tolerance
        )


class PipelineRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str
    cases: int
    failures: list[str]
    differing_cases: dict[str, list[str]]  # answers that are not Paddle's (texts, boxes, ...)
    max_number_diff: float | None


class ParityReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: int = 1
    pipeline: str = ""
    image: str = ""
    models: list[ModelParity]
    runs: list[PipelineRun]


def report_path(name: str) -> Path:
    return settings().output_dir / "parity" / f"{name}.json"


def measure(
    name: str, pipeline: Pipeline, image: str, extra_volumes: tuple[tuple[str, str, str], ...] = ()
) -> ParityReport:
    """Run hps_server.parity in `image` on the pipeline's golden cases."""
    volumes = [
        (str(PROJECT_ROOT / "pipelines" / name), f"/src/pipelines/{name}", "ro"),
        (str(Path(goldens.__file__)), "/src/goldens.py", "ro"),
        *extra_volumes,
    ]
    arguments = ["--pipeline-dir", f"/src/pipelines/{name}", "--goldens-module", "/src/goldens.py"]
    if pipeline.fixtures:
        fixtures = cache_root() / "fixtures" / name
        model_files.extract(name, pipeline.fixtures, fixtures)
        volumes.append((str(fixtures), "/fixtures", "ro"))
        arguments += ["--fixtures", "/fixtures"]
    print(f"hpsforge: parity: {name}: every declared engine against Paddle in {image}", flush=True)
    try:
        output = docker.run(
            image,
            ["/opt/hps/bin/python", "-m", "hps_server.parity", *arguments],
            remove=True,
            entrypoint="",
            volumes=volumes,
            envs={"HPS_LOG_REQUESTS": "0"},
        )
    except DockerException as error:
        raise HpsforgeError(
            f"parity of {name} failed to run in {image}:\n{(error.stderr or '').strip()[-2000:]}"
        ) from None
    document = json.loads(str(output)[str(output).index("{") :])
    return ParityReport(
        pipeline=name,
        image=image,
        models=[ModelParity.model_validate(model) for model in document["models"]],
        runs=[PipelineRun.model_validate(run) for run in document["pipeline"]],
    )


def table(report: ParityReport) -> str:
    """model × engine: the largest difference from Paddle against the tolerance; then the golden
    cases per engine and whether the answers are Paddle's."""
    lines = [f"{'model':24} {'engine':12} {'max |diff|':>11} {'tolerance':>10}  verdict"]
    for model in report.models:
        for result in model.results:
            verdict = "pass" if model.passes(result) else (result.error or "over tolerance")
            default = " (default)" if result.engine == model.default else ""
            diff = "-" if result.max_abs_diff is None else f"{result.max_abs_diff:.2e}"
            tolerance = "-" if model.tolerance is None else f"{model.tolerance:.0e}"
            lines.append(f"{model.model:24} {result.engine:12} {diff:>11} {tolerance:>10}  {verdict}{default}")
    lines.append(f"{'engine':12} {'goldens':>9}  answers vs paddle")
    for run in report.runs:
        if run.cases == 0:  # the models did not load on this engine
            lines.append(f"{run.engine:12} {'not run':>9}  {'; '.join(run.failures)[:200]}")
            continue
        passed = f"{run.cases - len({failure.split(':')[0] for failure in run.failures})}/{run.cases}"
        same = "same" if not run.differing_cases else f"differ in {', '.join(run.differing_cases)}"
        lines.append(f"{run.engine:12} {passed:>9}  {same}")
    return "\n".join(lines)


def judge(report: ParityReport) -> None:
    """ParityError when a model's default engine fails parity or the goldens on it."""
    for model in report.models:
        if model.default == REFERENCE_ENGINE:
            continue
        result = next((result for result in model.results if result.engine == model.default), None)
        if result is None or not model.passes(result):
            what = (
                "was not measured"
                if result is None
                else (result.error or f"differs from Paddle by {result.max_abs_diff:.3g} (tolerance {model.tolerance})")
            )
            raise ParityError(
                f"pipeline {report.pipeline}: model {model.model!r} on its default engine {model.default!r} "
                f"fails parity: {what}",
                hint=f"make another engine its default in pipelines/{report.pipeline}/pipeline.toml, "
                f"or fix the conversion; the report: {settings().shown(report_path(report.pipeline))}",
            )
    defaults = {model.default for model in report.models}
    for run in report.runs:
        if run.engine in defaults and run.failures:
            raise ParityError(
                f"pipeline {report.pipeline}: golden cases fail on engine {run.engine!r}, a default: "
                + "; ".join(run.failures[:3]),
                hint=f"the report: {settings().shown(report_path(report.pipeline))}",
            )


def check(name: str, pipeline: Pipeline, image: str) -> ParityReport:
    """Measure (unless output/parity/<name>.json is of this very image), write, print, judge."""
    path = report_path(name)
    report = None
    if path.is_file():
        try:
            previous = ParityReport.model_validate_json(path.read_text(encoding="utf-8"))
            report = previous if previous.image == image else None
        except ValueError:
            report = None
    if report is None:
        report = measure(name, pipeline, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, report.model_dump_json(indent=1) + "\n")
    print(table(report), flush=True)
    judge(report)
    return report
