"""The serving benchmark's report: one model per concept, written as output/bench/serving.json
(schema 1, whose field names bench/plot.py reads inside the bench image), the summary the targets
are read from, the table, and the plot.

A part measured only on request (the in-process and Flask baselines, a "before" image, a protocol)
is absent from the JSON when it was not measured; a figure that could not be had is null.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bundle.client_sdk import stages
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
from hpsforge.core.settings import PROJECT_ROOT, settings

BENCH_TOOLS = PROJECT_ROOT / "bench"
REPORT = "serving.json"
PLOT = "serving.png"
TARGET_CONCURRENCY = 8  # where the throughput targets are read
PERF_ANALYZER_AGREEMENT = 0.10  # how near perf_analyzer's QPS should be to the bench's own

Protocol = Literal["http", "grpc"]
PROTOCOLS: tuple[Protocol, ...] = ("http", "grpc")


def default_output_dir() -> Path:
    """output/bench: where serving.json and serving.png go by default."""
    return settings().output_dir / "bench"


def _unless_measured() -> Any:
    """A field absent from the JSON when None: a part measured only on request."""
    return Field(default=None, exclude_if=lambda value: value is None)


class ReportModel(BaseModel):
    # NaN (a percentile of no requests) is written as NaN, as json.dumps writes it.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, ser_json_inf_nan="constants")


# --- what the tools in bench/ measure ---------------------------------------------------------------


class Point(ReportModel):
    """One concurrency level of a closed-loop run (bench/loadgen.py)."""

    concurrency: int
    seconds: float
    requests: int
    failed: int  # answers that were not an errorCode 0 envelope
    errors: list[str]  # the clients' exceptions (the first few)
    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu_s: float
    server_cpu_ms: float | None  # the server's CPU time per answer, where its cgroup was found


class StageRow(ReportModel):
    """One model's stage in the server (hps_client.stages.summary)."""

    model: str
    stage: str
    requests: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


class TritonStatistics(ReportModel):
    """Triton's own statistics over the measured requests; empty when Triton did not give them."""

    mean_batch: float | None = _unless_measured()
    queue_ms: float | None = _unless_measured()
    compute_ms: float | None = _unless_measured()


class PerfAnalyzerPoint(ReportModel):
    """Triton's perf_analyzer over HTTP at one concurrency (the cross-check of the HTTP points)."""

    concurrency: int
    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


class TritonWorkload(ReportModel):
    """One workload on one Triton image: the points of each protocol, the stage times and Triton's
    statistics over every measured request, and perf_analyzer's figures when asked for."""

    model: str
    http: list[Point] | None = _unless_measured()
    grpc: list[Point] | None = _unless_measured()
    stages: list[StageRow]
    statistics: TritonStatistics
    perf_analyzer: PerfAnalyzerPoint | None = _unless_measured()

    def perf_analyzer_ratio(self) -> float | None:
        """perf_analyzer's QPS over the bench's HTTP QPS at the same concurrency."""
        if self.perf_analyzer is None:
            return None
        point = point_at(self.http or [], self.perf_analyzer.concurrency)
        if point is None or not point.qps:
            return None
        return self.perf_analyzer.qps / point.qps

    def points(self, protocol: Protocol) -> list[Point]:
        return (self.http if protocol == "http" else self.grpc) or []


class TritonRun(BaseModel):
    """One Triton image: each workload under its own name, beside `ready_s` (schema 1's layout)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, ser_json_inf_nan="constants")
    __pydantic_extra__: dict[str, TritonWorkload] = Field(init=False)

    ready_s: float  # container start to ready

    @property
    def workloads(self) -> dict[str, TritonWorkload]:
        return self.__pydantic_extra__

    @classmethod
    def of(cls, workloads: dict[str, TritonWorkload], ready_s: float) -> TritonRun:
        return cls.model_validate({**workloads, "ready_s": ready_s})

    @model_serializer(mode="wrap")
    def _ready_s_last(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        fields: dict[str, Any] = handler(self)
        fields["ready_s"] = fields.pop("ready_s")  # after the workloads, where schema 1 has it
        return fields


class InProcessFigures(ReportModel):
    """One workload in one in-process configuration (bench/inprocess.py)."""

    seconds: float
    calls: int
    requests: int
    failed: int
    qps: float
    p50_ms: float  # per call (of `batch` requests)
    p90_ms: float
    p99_ms: float
    cpu_ms: float | None  # CPU time per request
    stages_mean_ms: dict[str, float]


class InProcessConfig(ReportModel):
    """P processes of T Paddle threads, B requests per call."""

    processes: int
    threads: int
    batch: int
    workloads: dict[str, InProcessFigures]

    @property
    def label(self) -> str:
        return f"{self.processes}x{self.threads}"


class FlaskConfig(ReportModel):
    """A gunicorn configuration of the Flask baseline, and its points per workload."""

    label: str
    workers: int
    threads: int
    workloads: dict[str, list[Point]] = {}


# --- what the targets are read from -------------------------------------------------------------


class InProcessBest(ReportModel):
    label: str
    qps: float
    cpu_ms: float | None


class InProcessFastest(ReportModel):
    label: str
    p50_ms: float


class InProcessBatched(ReportModel):
    label: str
    qps: float


class FlaskBest(ReportModel):
    label: str
    qps: float  # at the target concurrency (0 when it was not measured)
    points: list[Point]


class TritonFigures(ReportModel):
    """One Triton image over one protocol, against the baselines."""

    qps_c8: float | None
    p50_c1_ms: float | None
    cpu_ms_c8: float | None
    vs_in_process: float | None = _unless_measured()
    vs_flask: float | None = _unless_measured()
    c1_overhead_ms: float | None = _unless_measured()  # p50 at c=1 beyond the fastest in-process one


class Summary(ReportModel):
    """One workload's figures the targets are read from."""

    in_process_best: InProcessBest | None = _unless_measured()
    in_process_p50: InProcessFastest | None = _unless_measured()
    in_process_batched: InProcessBatched | None = _unless_measured()
    flask_best: FlaskBest | None = _unless_measured()
    flask_p50_c1_ms: float | None = _unless_measured()
    triton_http: TritonFigures | None = _unless_measured()
    triton_grpc: TritonFigures | None = _unless_measured()
    triton_before_http: TritonFigures | None = _unless_measured()
    triton_before_grpc: TritonFigures | None = _unless_measured()


# --- the report --------------------------------------------------------------------------------------


class Images(ReportModel):
    triton: str  # the pipeline image
    bench: str  # its bench image (the baselines, the clients, the plot)
    triton_before: str | None = _unless_measured()


class Load(ReportModel):
    """The machine's load averages (1, 5, 15 minutes) around a run: other work skews the rates."""

    before: list[float]
    after: list[float]


class PipelineEntry(ReportModel):
    images: Images
    cases: dict[str, str]  # workload -> its golden case
    load: Load
    in_process: list[InProcessConfig] | None = _unless_measured()
    triton: TritonRun
    triton_before: TritonRun | None = _unless_measured()
    flask: list[FlaskConfig] | None = _unless_measured()
    summary: dict[str, Summary]  # per workload


class BenchSettings(ReportModel):
    seconds: float
    warmup: float
    concurrency: list[int]
    min_requests: int
    triton_env: dict[str, str]


class ServingReport(ReportModel):
    """output/bench/serving.json."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    version: Literal[1] = Field(default=1, alias="schema")
    target: str
    cpus: int
    started: str
    settings: BenchSettings
    load: Load
    pipelines: dict[str, PipelineEntry]
    seconds: float  # the whole run

    def json_text(self) -> str:
        # json.dumps of the model's JSON form: the same text as schema 1 was always written in.
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=1, ensure_ascii=False) + "\n"


# --- the summary, the table, the files -----------------------------------------------------------


def qps_at(points: list[Point], level: int) -> float:
    return next((point.qps for point in points if point.concurrency == level), 0.0)


def point_at(points: list[Point], level: int) -> Point | None:
    return next((point for point in points if point.concurrency == level), None)


def summarize(
    workload: str,
    in_process: list[InProcessConfig] | None,
    flask: list[FlaskConfig] | None,
    triton: TritonRun,
    triton_before: TritonRun | None,
) -> Summary:
    """The figures the targets are read from, for one workload."""
    best_in_process = fastest_in_process = batched_in_process = None
    batch1 = [config for config in in_process or [] if config.batch == 1]
    if batch1:
        best = max(batch1, key=lambda config: config.workloads[workload].qps)
        single = [config for config in batch1 if config.processes == 1]
        fastest = min(single or batch1, key=lambda config: config.workloads[workload].p50_ms)
        best_in_process = InProcessBest(
            label=best.label, qps=best.workloads[workload].qps, cpu_ms=best.workloads[workload].cpu_ms
        )
        fastest_in_process = InProcessFastest(label=fastest.label, p50_ms=fastest.workloads[workload].p50_ms)
    batched = [config for config in in_process or [] if config.batch > 1]
    if batched:
        best = max(batched, key=lambda config: config.workloads[workload].qps)
        batched_in_process = InProcessBatched(
            label=f"{best.label}, {best.batch} per call", qps=best.workloads[workload].qps
        )
    best_flask = flask_p50_c1 = None
    if flask:
        chosen = max(flask, key=lambda config: qps_at(config.workloads[workload], TARGET_CONCURRENCY))
        best_flask = FlaskBest(
            label=chosen.label,
            qps=qps_at(chosen.workloads[workload], TARGET_CONCURRENCY),
            points=chosen.workloads[workload],
        )
        flask_p50_c1 = min(
            (point.p50_ms for config in flask if (point := point_at(config.workloads[workload], 1))), default=None
        )

    def figures(run: TritonRun | None, protocol: Protocol) -> TritonFigures | None:
        measured = run.workloads.get(workload) if run else None
        if measured is None:
            return None
        target, one = point_at(measured.points(protocol), TARGET_CONCURRENCY), point_at(measured.points(protocol), 1)
        return TritonFigures(
            qps_c8=target.qps if target else None,
            p50_c1_ms=one.p50_ms if one else None,
            cpu_ms_c8=target.server_cpu_ms if target else None,
            vs_in_process=target.qps / best_in_process.qps if target and best_in_process else None,
            vs_flask=target.qps / best_flask.qps if target and best_flask and best_flask.qps else None,
            c1_overhead_ms=one.p50_ms - fastest_in_process.p50_ms if one and fastest_in_process else None,
        )

    return Summary(
        in_process_best=best_in_process,
        in_process_p50=fastest_in_process,
        in_process_batched=batched_in_process,
        flask_best=best_flask,
        flask_p50_c1_ms=flask_p50_c1,
        triton_http=figures(triton, "http"),
        triton_grpc=figures(triton, "grpc"),
        triton_before_http=figures(triton_before, "http"),
        triton_before_grpc=figures(triton_before, "grpc"),
    )


def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def _row(title: str, summary: Summary, http: TritonFigures | None, grpc: TritonFigures | None) -> str:
    inproc, flask, p50 = summary.in_process_best, summary.flask_best, summary.in_process_p50
    batched = summary.in_process_batched
    in_process = f"{fmt(inproc.qps if inproc else None)} ({inproc.label if inproc else '-'})"
    flask_best = f"{fmt(flask.qps if flask else None)} ({flask.label if flask else '-'})"
    triton = f"{fmt(http.qps_c8 if http else None)} / {fmt(grpc.qps_c8 if grpc else None)}"
    vs_in_process = (
        f"{fmt(http.vs_in_process if http else None, '{:.2f}')}/{fmt(grpc.vs_in_process if grpc else None, '{:.2f}')}"
    )
    vs_flask = f"{fmt(http.vs_flask if http else None, '{:.2f}')}/{fmt(grpc.vs_flask if grpc else None, '{:.2f}')}"
    overhead = f"({fmt(http.c1_overhead_ms if http else None, '{:+.1f}')})"
    cpu = f"{fmt(inproc.cpu_ms if inproc else None)}/{fmt(http.cpu_ms_c8 if http else None)}"
    return (
        f"{title[:34]:34} {in_process:>17} {fmt(batched.qps if batched else None):>8} {flask_best:>17} "
        f"{triton:>15} {vs_in_process:>10} {vs_flask:>10} {fmt(p50.p50_ms if p50 else None):>8} "
        f"{fmt(http.p50_c1_ms if http else None):>5} {fmt(grpc.p50_c1_ms if grpc else None):>5} "
        f"{overhead:>8} {cpu:>14}"
    )


def table(report: ServingReport) -> str:
    lines = [
        f"serving benchmark ({report.target}, {report.cpus} CPUs; {report.settings.seconds:g} s per "
        f"point after {report.settings.warmup:g} s warm-up; load average {report.load.before} before, "
        f"{report.load.after} after)",
        "",
        f"{'pipeline / workload':34} {'in-process':>17} {'batched':>8} {'Flask c=8':>17} {'Triton c=8':>15} "
        f"{'÷ in-proc':>10} {'÷ Flask':>10} {'c=1 p50 ms':>28} {'CPU ms/req':>14}",
        f"{'':34} {'best req/s':>17} {'8/call':>8} {'best req/s':>17} {'HTTP / gRPC':>15} "
        f"{'HTTP/gRPC':>10} {'HTTP/gRPC':>10} {'in-proc  HTTP  gRPC  (+HTTP)':>28} {'in-proc/HTTP':>14}",
    ]
    for name, entry in report.pipelines.items():
        for workload, summary in entry.summary.items():
            title = f"{name} / {workload} ({entry.cases[workload]})"
            for http, grpc, which in (
                (summary.triton_http, summary.triton_grpc, ""),
                (summary.triton_before_http, summary.triton_before_grpc, " (before)"),
            ):
                if http is not None or grpc is not None:
                    lines.append(_row(title + which, summary, http, grpc))
    lines += [
        "",
        "Targets at c=8: ≥ 0.90 × in-process best, ≥ 1.20 × Flask best; c=1: p50 ≤ in-process + 3 ms.",
        "In-process PxT: P processes of T Paddle threads, one request per call; 8/call: eight per call. "
        "CPU ms/req: CPU time spent per answer (every process of the server; Triton's container at c=8), "
        "less sensitive to other load than the rates.",
    ]
    for name, entry in report.pipelines.items():
        for workload in entry.cases:
            triton = entry.triton.workloads.get(workload)
            if triton is not None and triton.stages:
                statistics = triton.statistics
                lines += [
                    "",
                    f"{name} / {workload}: stage times in the server (hps_stage_seconds, every measured "
                    f"request; Triton: mean batch {fmt(statistics.mean_batch, '{:.2f}')}, "
                    f"queue {fmt(statistics.queue_ms, '{:.2f}')} ms, "
                    f"execution {fmt(statistics.compute_ms, '{:.2f}')} ms)",
                    stages.table([row.model_dump() for row in triton.stages]),
                ]
            single = [config for config in entry.in_process or [] if config.batch == 1 and config.processes == 1]
            if single:
                means = single[0].workloads[workload].stages_mean_ms
                lines.append(
                    f"  in-process {single[0].label}: "
                    + ", ".join(f"{stage} {means[stage]:.2f}" for stage in stages.STAGES if stage in means)
                    + " ms (means)"
                )
    for name, entry in report.pipelines.items():
        for workload, triton in entry.triton.workloads.items():
            checked, ratio = triton.perf_analyzer, triton.perf_analyzer_ratio()
            if checked is not None:
                ours = point_at(triton.http or [], checked.concurrency)
                lines += [
                    "",
                    f"{name} / {workload}: perf_analyzer (HTTP, c={checked.concurrency}) {checked.qps:.1f} req/s, "
                    f"p50 {checked.p50_ms:.1f} ms, p99 {checked.p99_ms:.1f} ms; the bench's HTTP "
                    f"{fmt(ours.qps if ours else None)} req/s, p50 {fmt(ours.p50_ms if ours else None)} ms, "
                    f"p99 {fmt(ours.p99_ms if ours else None)} ms: ratio {fmt(ratio, '{:.2f}')} "
                    f"({'within' if ratio is not None and abs(ratio - 1) <= PERF_ANALYZER_AGREEMENT else 'outside'} "
                    f"±{PERF_ANALYZER_AGREEMENT:.0%})",
                ]
    return "\n".join(lines)


def write(report: ServingReport, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / REPORT, report.json_text())
    return folder / REPORT


def plot(bench: str, folder: Path) -> None:
    """folder/serving.png from folder/serving.json, drawn by bench/plot.py in the bench image (its
    matplotlib is bench-only)."""
    try:
        docker.run(
            bench,
            ["python3", "/bench/plot.py", f"/out/{REPORT}", f"/out/{PLOT}"],
            remove=True,
            entrypoint="",
            user=f"{os.getuid()}:{os.getgid()}",
            envs={"MPLCONFIGDIR": "/tmp/matplotlib"},
            volumes=[(str(BENCH_TOOLS), "/bench", "ro"), (str(folder), "/out", "rw")],
        )
    except DockerException as error:
        raise HpsforgeError(f"the plot failed in {bench}:\n{(error.stderr or '').strip()[-1500:]}") from None
