"""The measurements: containers of the pipeline image and of its bench image, the golden cases
every server must answer first, the closed-loop load (bench/loadgen.py) against Triton and Flask,
the in-process baseline (bench/inprocess.py), and `run`, which measures every named pipeline and
writes the report (report.py).

The clients run in the bench image inside the server's network namespace (no port proxy in the
way), on the same cores as the server: their CPU time is reported with each point.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, NoReturn

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bench.serving import perf_analyzer
from hpsforge.bench.serving.build import bench_image
from hpsforge.bench.serving.report import (
    BENCH_TOOLS,
    PROTOCOLS,
    TARGET_CONCURRENCY,
    BenchSettings,
    FlaskConfig,
    Images,
    InProcessConfig,
    Load,
    PipelineEntry,
    Point,
    Protocol,
    ServingReport,
    StageRow,
    TritonRun,
    TritonStatistics,
    TritonWorkload,
    default_output_dir,
    fmt,
    plot,
    qps_at,
    summarize,
    write,
)
from hpsforge.bundle import goldens
from hpsforge.bundle.client_sdk import ready, stages
from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import Pipeline, image_slug
from hpsforge.core.project import Project
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.images import graph, pipeline_images, rc, runtime
from hpsforge.inputs import model_files
from hpsforge.inputs.store import cache_root, scratch_dir
from hpsforge.locks import images_lock, pip_locks

READY_TIMEOUT_S = 300
SHM_SIZE = "256m"
METRICS_INTERVAL_S = 1.0  # hps_server flushes its metrics this often (HPS_METRICS_INTERVAL_S)
TRITON_PORTS: dict[Protocol, int] = {"http": 8000, "grpc": 8001}
# The deployment's engine for every model that declares it (hps_server reads it at load).
ENGINE_VARIABLE = "HPS_ENGINE"
BASELINE_ENGINE = "paddle"  # the seed stack: Flask + gunicorn + Paddle Inference
Client = Literal["http", "grpc", "json"]  # bench/loadgen.py's protocols: Triton's two, Flask's JSON POST
CLIENT_LABELS: dict[Client, str] = {"http": "HTTP", "grpc": "gRPC", "json": "Flask"}


@dataclass(frozen=True)
class BenchOptions:
    """How the serving benchmark measures (the `bench -- cpu --serving` flags)."""

    seconds: float = 10.0
    warmup: float = 2.0
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    min_requests: int = 20
    flask: bool = True
    in_process: bool = True
    quick: bool = False  # one in-process and one Flask configuration: a smoke run
    protocols: tuple[Protocol, ...] = PROTOCOLS
    before: dict[str, str] = field(default_factory=dict)  # pipeline -> Triton image measured as "before"
    triton_env: dict[str, str] = field(default_factory=dict)  # extra environment of the Triton containers
    perf_analyzer: Path | None = None  # perf_analyzer's binary: cross-check the HTTP points at TARGET_CONCURRENCY
    # The engines to measure each pipeline on, each set for every model that declares it (None: each
    # model's declared default); the Flask baseline always runs Paddle.
    engines: tuple[str | None, ...] = (None,)
    output: Path = field(default_factory=default_output_dir)


# --- containers ------------------------------------------------------------------------------------


@dataclass
class Server:
    container: str
    http: str  # host:port on the host, for the golden cases, metrics and statistics
    metrics: str | None
    ready_s: float


def _host_port(container: str, port: int) -> str:
    bound = (docker.container.inspect(container).network_settings.ports or {})[f"{port}/tcp"][0]
    return f"127.0.0.1:{bound['HostPort']}"


def _running(container: str) -> bool:
    try:
        return bool(docker.container.inspect(container).state.running)
    except DockerException:
        return False


@contextmanager
def _server(
    image: str,
    label: str,
    ports: tuple[int, ...],
    metrics_port: int | None = None,
    ready_path: str = ready.READY_PATH,
    **options: Any,
) -> Iterator[Server]:
    """A detached container publishing `ports` on 127.0.0.1, once `ready_path` answers 200."""
    name = f"hps-bench-{label}-{os.getpid()}"
    try:
        docker.run(
            image,
            detach=True,
            name=name,
            shm_size=SHM_SIZE,
            publish=[("127.0.0.1:", port) for port in ports],
            **options,
        )
    except DockerException as error:
        raise HpsforgeError(f"cannot start {image}: {(error.stderr or '').strip()[-400:]}") from None
    try:
        http = _host_port(name, ports[0])
        try:
            ready_s = ready.wait_until(
                lambda: ready.http_ready(http, ready_path),
                READY_TIMEOUT_S,
                alive=lambda: _running(name),
                what=f"{label} ({image})",
            )
        except ready.NotReadyError as error:
            raise HpsforgeError(f"{error}; the end of its log:\n{docker.container.logs(name, tail=40)}") from None
        yield Server(name, http, _host_port(name, metrics_port) if metrics_port else None, ready_s)
    finally:
        docker.container.remove(name, force=True)


def _post(url: str, body: bytes, timeout: float = 300) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:  # it holds the answer's connection
            return error.code, error.read()


def _triton_send(http: str) -> goldens.Send:
    def send(model: str, request: goldens.JsonObject) -> goldens.JsonObject:
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "BYTES",
                        "shape": [1, 1],
                        "data": [json.dumps(request, ensure_ascii=False)],
                    }
                ]
            }
        ).encode()
        status, reply = _post(f"http://{http}/v2/models/{model}/infer", body)
        if status != 200:
            return {"errorCode": None, "errorMsg": f"HTTP {status}: {reply[:300]!r}"}
        envelope: goldens.JsonObject = json.loads(json.loads(reply)["outputs"][0]["data"][0])
        return envelope

    return send


def _json_send(http: str) -> goldens.Send:
    def send(model: str, request: dict[str, Any]) -> dict[str, Any]:
        status, reply = _post(f"http://{http}/{model}", document_bytes(request))
        return json.loads(reply) if status == 200 else {"errorCode": None, "errorMsg": f"HTTP {status}"}

    return send


def document_bytes(request: dict[str, Any]) -> bytes:
    """The request document as every client of the benchmark sends it (bench/inprocess.py too)."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _tool(
    image: str,
    arguments: list[str],
    volumes: list[tuple[str, str, str]],
    network: str | None = None,
    envs: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run a bench tool (python3 /bench/<tool>) in the bench image; its JSON documents, one a line."""
    try:
        output = docker.run(
            image,
            ["python3", *arguments],
            remove=True,
            entrypoint="",
            networks=[network] if network else [],
            shm_size=SHM_SIZE,
            volumes=[(str(BENCH_TOOLS), "/bench", "ro"), *volumes],
            envs={"HPS_LOG_REQUESTS": "0", **(envs or {})},
        )
    except DockerException as error:
        raise HpsforgeError(f"{arguments[0]} failed in {image}:\n{(error.stderr or '').strip()[-2000:]}") from None
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for document in documents:
        if "error" in document:
            raise HpsforgeError(f"{arguments[0]} in {image}: {document['error']}")
    return documents


# --- one pipeline --------------------------------------------------------------------------------


def _check_goldens(pipeline_dir: Path, send: goldens.Send, fixtures: Path | None, where: str) -> goldens.Run:
    run = goldens.run(pipeline_dir, send, fixtures)
    if run.failures:
        raise HpsforgeError(f"{where} answered golden cases wrongly:\n  " + "\n  ".join(run.failures[:10]))
    return run


def _workload_files(run: goldens.Run, workloads: dict[str, str], folder: Path) -> dict[str, tuple[str, Path]]:
    """workload -> (model, file holding its request document), from the checked golden run."""
    outcomes = {outcome.case.name: outcome for outcome in run.outcomes}
    files: dict[str, tuple[str, Path]] = {}
    for workload, case in workloads.items():
        path = folder / f"{workload}.json"
        path.write_bytes(document_bytes(outcomes[case].request))
        path.chmod(0o644)
        files[workload] = (outcomes[case].case.model, path)
    return files


def _triton_statistics(http: str, model: str) -> dict[str, int]:
    """Triton's cumulative counters of the model (empty when it does not give them)."""
    try:
        with urllib.request.urlopen(f"http://{http}/v2/models/{model}/stats", timeout=10) as response:
            entry = json.loads(response.read())["model_stats"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return {}
    stats = entry["inference_stats"]
    return {
        "inferences": entry.get("inference_count", 0),
        "executions": entry.get("execution_count", 0),
        "queue_ns": stats["queue"]["ns"],
        "queue_count": stats["queue"]["count"],
        "compute_ns": stats["compute_infer"]["ns"],
        "compute_count": stats["compute_infer"]["count"],
    }


def _statistics_delta(after: dict[str, int], before: dict[str, int]) -> TritonStatistics:
    if not after or not before:
        return TritonStatistics()
    delta = {key: after[key] - before.get(key, 0) for key in after}
    return TritonStatistics(
        mean_batch=delta["inferences"] / delta["executions"] if delta["executions"] else None,
        queue_ms=delta["queue_ns"] / delta["queue_count"] / 1e6 if delta["queue_count"] else None,
        compute_ms=delta["compute_ns"] / delta["compute_count"] / 1e6 if delta["compute_count"] else None,
    )


def _cgroup_cpu_file(container: str) -> Path | None:
    """The host file holding the container's CPU usage (cgroup v1 cpuacct, or v2), if found."""
    identifier = docker.container.inspect(container).id
    for candidate in (
        Path("/sys/fs/cgroup/cpuacct/docker") / identifier / "cpuacct.usage",
        Path("/sys/fs/cgroup/docker") / identifier / "cpu.stat",
        Path("/sys/fs/cgroup/system.slice") / f"docker-{identifier}.scope" / "cpu.stat",
    ):
        if candidate.is_file():
            return candidate
    return None


def _loadgen(
    bench: str,
    server: str,
    protocol: Client,
    port: int,
    model: str,
    document: Path,
    levels: tuple[int, ...],
    options: BenchOptions,
) -> list[Point]:
    """bench/loadgen.py against `server` (its network namespace) at each level; every answer checked."""
    arguments = [
        "/bench/loadgen.py",
        "--protocol",
        protocol,
        "--port",
        str(port),
        "--model",
        model,
        "--document",
        f"/work/{document.name}",
        "--concurrency",
        ",".join(map(str, levels)),
        "--seconds",
        str(options.seconds),
        "--warmup",
        str(options.warmup),
        "--min-requests",
        str(options.min_requests),
    ]
    volumes = [(str(document.parent), "/work", "ro")]
    if cpu_file := _cgroup_cpu_file(server):
        volumes.append((str(cpu_file), "/server-cpu", "ro"))
        arguments += ["--server-cpu", "/server-cpu"]
    points = [
        Point.model_validate(document) for document in _tool(bench, arguments, volumes, network=f"container:{server}")
    ]
    for point in points:
        if point.failed or point.errors:
            raise HpsforgeError(
                f"{model} over {protocol} at concurrency {point.concurrency}: "
                f"{point.failed} answers were not errorCode 0 {point.errors}"
            )
        print(
            f"hpsforge: bench:   {CLIENT_LABELS[protocol]:5} c={point.concurrency:<3} {point.qps:8.1f} req/s  "
            f"p50 {point.p50_ms:7.1f}  p90 {point.p90_ms:7.1f}  p99 {point.p99_ms:7.1f} ms  "
            f"server CPU {fmt(point.server_cpu_ms, '{:.2f}')} ms/req  (client {point.client_cpu_s:.1f} s CPU)",
            flush=True,
        )
    return points


def _measure_triton(
    image: str,
    bench: str,
    pipeline_dir: Path,
    fixtures: Path | None,
    workloads: dict[str, str],
    work: Path,
    options: BenchOptions,
    label: str,
    engine: str | None = None,
) -> TritonRun:
    print(f"hpsforge: bench: Triton {image}{_engine_label(engine)}", flush=True)
    results: dict[str, TritonWorkload] = {}
    envs = {**options.triton_env, **_engine_env(engine)}
    with _server(image, label, (8000, 8001, 8002), metrics_port=8002, envs=envs) as server:
        assert server.metrics is not None  # published: metrics_port above
        run = _check_goldens(pipeline_dir, _triton_send(server.http), fixtures, image)
        files = _workload_files(run, workloads, work)
        for workload, (model, document) in files.items():
            before_stages = stages.parse(stages.scrape(server.metrics))
            before_statistics = _triton_statistics(server.http, model)
            points: dict[Protocol, list[Point]] = {}
            for protocol in options.protocols:
                print(f"hpsforge: bench: {workload} over {protocol}", flush=True)
                points[protocol] = _loadgen(
                    bench,
                    server.container,
                    protocol,
                    TRITON_PORTS[protocol],
                    model,
                    document,
                    options.concurrency,
                    options,
                )
            time.sleep(METRICS_INTERVAL_S + 0.5)  # the model processes' last counts reach Triton
            rows = stages.summary(stages.difference(stages.parse(stages.scrape(server.metrics)), before_stages))
            checked = None
            if options.perf_analyzer is not None:
                print(f"hpsforge: bench: {workload}: perf_analyzer over HTTP at c={TARGET_CONCURRENCY}", flush=True)
                try:
                    checked = perf_analyzer.measure(
                        options.perf_analyzer, server.container, model, document, TARGET_CONCURRENCY, options.seconds
                    )
                except perf_analyzer.UnstableError as error:
                    print(f"hpsforge: bench: {error}; no cross-check for {workload}", flush=True)
            results[workload] = TritonWorkload(
                perf_analyzer=checked,
                model=model,
                http=points.get("http"),
                grpc=points.get("grpc"),
                stages=[StageRow.model_validate(row) for row in rows],
                statistics=_statistics_delta(_triton_statistics(server.http, model), before_statistics),
            )
        return TritonRun.of(results, server.ready_s)


def flask_configs(cpus: int) -> list[FlaskConfig]:
    """What a user would try: a worker per CPU, one worker with a thread per CPU, one more worker
    than CPUs; Paddle gets the CPUs divided among the workers."""
    return [
        FlaskConfig(label=f"-w {cpus}", workers=cpus, threads=1),
        FlaskConfig(label=f"-w 1 --threads {cpus}", workers=1, threads=cpus),
        FlaskConfig(label=f"-w {cpus + 1}", workers=cpus + 1, threads=1),
    ]


def _measure_flask(
    bench: str,
    pipeline_dir: Path,
    fixtures: Path | None,
    workloads: dict[str, str],
    work: Path,
    options: BenchOptions,
    cpus: int,
    label: str,
) -> list[FlaskConfig]:
    """Every configuration at concurrency 1 and the target one; the best one also at the rest."""
    focus = tuple(level for level in options.concurrency if level in (1, TARGET_CONCURRENCY)) or options.concurrency

    def run(config: FlaskConfig, levels: tuple[int, ...]) -> dict[str, list[Point]]:
        command = [
            "gunicorn",
            "--chdir",
            "/bench",
            "-b",
            "0.0.0.0:8000",
            "-w",
            str(config.workers),
            "--threads",
            str(config.threads),
            "--timeout",
            "600",
            "--log-level",
            "warning",
            "flask_app:app",
        ]
        envs = {
            "HPS_CPU_THREADS": str(max(1, cpus // config.workers)),
            "HPS_LOG_REQUESTS": "0",
            **_engine_env(BASELINE_ENGINE),
        }
        print(f"hpsforge: bench: Flask+gunicorn {config.label}", flush=True)
        with _server(
            bench,
            f"{label}-flask",
            (8000,),
            entrypoint="",
            command=command,
            envs=envs,
            volumes=[(str(BENCH_TOOLS), "/bench", "ro")],
            ready_path="/health",
        ) as server:
            golden_run = _check_goldens(pipeline_dir, _json_send(server.http), fixtures, f"Flask {config.label}")
            files = _workload_files(golden_run, workloads, work)
            return {
                workload: _loadgen(bench, server.container, "json", 8000, model, document, levels, options)
                for workload, (model, document) in files.items()
            }

    measured = [
        config.model_copy(update={"workloads": run(config, focus)})
        for config in flask_configs(cpus)[: 1 if options.quick else None]
    ]
    rest = tuple(level for level in options.concurrency if level not in focus)
    if rest:
        # The best configuration of each workload (at the target concurrency) gets the other levels
        # too, so the plot has its whole curve; one more start per configuration that is best.
        best = {
            workload: max(measured, key=lambda config: qps_at(config.workloads[workload], TARGET_CONCURRENCY))
            for workload in workloads
        }
        for index, config in enumerate(measured):
            best_for = [workload for workload in workloads if best[workload] is config]
            if best_for:
                extra = run(config, rest)
                measured[index] = config.model_copy(
                    update={
                        "workloads": {
                            workload: sorted(points + extra[workload], key=lambda point: point.concurrency)
                            if workload in best_for
                            else points
                            for workload, points in config.workloads.items()
                        }
                    }
                )
    return measured


def in_process_configs(cpus: int) -> list[str]:
    configs = [f"1x{cpus}x1"]
    if cpus > 1:
        configs += ["1x1x1", f"{cpus}x1x1"]
    return configs + [f"{cpus}x1x8"]


def _measure_in_process(
    bench: str,
    name: str,
    workloads: dict[str, str],
    fixtures: Path | None,
    options: BenchOptions,
    cpus: int,
    engine: str | None = None,
) -> list[InProcessConfig]:
    configs = in_process_configs(cpus)[: 1 if options.quick else None]
    print(
        f"hpsforge: bench: {name}{_engine_label(engine)} in-process "
        f"({', '.join(configs)}: processes x threads x batch)",
        flush=True,
    )
    # goldens.py alone (standard library + pydantic): the runner the host checks the servers with.
    volumes = [
        (str(PROJECT_ROOT / "pipelines" / name), f"/src/pipelines/{name}", "ro"),
        (str(Path(goldens.__file__)), "/src/goldens.py", "ro"),
    ]
    arguments = [
        "/bench/inprocess.py",
        "--pipeline-dir",
        f"/src/pipelines/{name}",
        "--goldens-module",
        "/src/goldens.py",
        "--configs",
        ",".join(configs),
        "--seconds",
        str(options.seconds),
        "--warmup",
        str(options.warmup),
        "--min-requests",
        str(options.min_requests),
    ]
    if fixtures is not None:
        volumes.append((str(fixtures), "/fixtures", "ro"))
        arguments += ["--fixtures", "/fixtures"]
    for workload, case in workloads.items():
        arguments += ["--workload", f"{workload}={case}"]
    (document,) = _tool(bench, arguments, volumes, envs=_engine_env(engine))
    measured = [InProcessConfig.model_validate(config) for config in document["configs"]]
    for config in measured:
        for workload, figures in config.workloads.items():
            print(
                f"hpsforge: bench:   in-process {config.processes}x{config.threads}x{config.batch} "
                f"{workload:6} {figures.qps:8.1f} req/s  p50 {figures.p50_ms:7.1f} ms  "
                f"CPU {fmt(figures.cpu_ms, '{:.2f}')} ms/req",
                flush=True,
            )
    return measured


def _engine_env(engine: str | None) -> dict[str, str]:
    return {} if engine is None else {ENGINE_VARIABLE: engine}


def _engine_label(engine: str | None) -> str:
    return "" if engine is None else f" [{engine}]"


def entry_name(name: str, engine: str | None) -> str:
    """The report's key of one pipeline on one engine (the pipeline's name on its declared defaults)."""
    return name + _engine_label(engine)


def pipeline_engines(pipeline: Pipeline, wanted: tuple[str | None, ...]) -> list[str | None]:
    """The wanted engines some model of the pipeline declares (None, the declared defaults, always)."""
    declared = {engine for model in pipeline.models for engine in model.engines}
    return [engine for engine in wanted if engine is None or engine in declared]


def measure_pipeline(
    config: ProjectConfig,
    name: str,
    pipeline: Pipeline,
    target: str,
    shared: dict[str, images_lock.ImageRecord],
    runtime_image: images_lock.ImageRecord,
    options: BenchOptions,
    cpus: int,
) -> dict[str, PipelineEntry]:
    """One entry per engine measured (entry_name); the Flask + Paddle baseline is measured once, kept
    in the first entry and set against every engine's figures."""
    golden_file = goldens.load_file(PROJECT_ROOT / "pipelines" / name)
    if golden_file.bench is None:
        raise HpsforgeError(
            f"pipelines/{name}/goldens/cases.toml has no [bench] table",
            hint="name its golden and large workload cases there (see build/bundle/goldens.py)",
        )
    workloads = golden_file.bench.named()
    pipeline_image = pipeline_images.build(config, name, pipeline, target, runtime_image)
    bench = bench_image(config, name, pipeline, target, runtime_image, shared[rc.ROLE], pipeline_image).reference
    fixtures = None
    if pipeline.fixtures:
        fixtures = cache_root() / "fixtures" / name
        model_files.extract(name, pipeline.fixtures, fixtures)
    pipeline_dir = PROJECT_ROOT / "pipelines" / name
    slug = image_slug(name)
    before = options.before.get(name)
    entries: dict[str, PipelineEntry] = {}
    with tempfile.TemporaryDirectory(prefix=f"serving-{slug}-", dir=scratch_dir()) as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        flask = None
        if options.flask:
            flask = _measure_flask(bench, pipeline_dir, fixtures, workloads, work, options, cpus, slug)
        for engine in pipeline_engines(pipeline, options.engines):
            load_before = _load()
            in_process = triton_before = None
            if options.in_process:
                in_process = _measure_in_process(bench, name, workloads, fixtures, options, cpus, engine)
            label = f"{slug}-triton" + (f"-{engine}" if engine else "")
            triton = _measure_triton(
                pipeline_image.reference, bench, pipeline_dir, fixtures, workloads, work, options, label, engine
            )
            if before is not None and engine is None:
                triton_before = _measure_triton(
                    before, bench, pipeline_dir, fixtures, workloads, work, options, f"{slug}-before"
                )
            entries[entry_name(name, engine)] = PipelineEntry(
                images=Images(
                    triton=pipeline_image.reference,
                    bench=bench,
                    triton_before=before if triton_before is not None else None,
                ),
                cases=workloads,
                load=Load(before=load_before, after=_load()),
                in_process=in_process,
                triton=triton,
                triton_before=triton_before,
                flask=None if entries else flask,
                summary={
                    workload: summarize(workload, in_process, flask, triton, triton_before) for workload in workloads
                },
            )
    return entries


def _load() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")  # so every container of the run is removed on the way out


def run(project: Project, pipelines: dict[str, Pipeline], target: str, options: BenchOptions) -> ServingReport:
    """Measure every named pipeline; write the JSON report and the plot; the report."""
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _run(project, pipelines, target, options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(project: Project, pipelines: dict[str, Pipeline], target: str, options: BenchOptions) -> ServingReport:
    config = project.config
    if target != pip_locks.BENCH_BASE_TARGET:
        raise HpsforgeError(
            f"the serving benchmark measures the {pip_locks.BENCH_BASE_TARGET} target (its bench "
            f"images follow lock/requirements/{pip_locks.BENCH_BASE_TARGET}.txt), not {target}"
        )
    # The runtime's lock covers every pipeline's requirements, whichever are measured.
    shared = graph.BuildGraph.of(project, [target], with_pipelines=False).build()
    runtime_image = shared[runtime.role(target)]
    cpus = int(docker.system.info().n_cpu or os.cpu_count() or 1)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = _load()
    started = time.monotonic()
    entries: dict[str, PipelineEntry] = {}
    for name, pipeline in pipelines.items():
        print(f"hpsforge: bench: {name}", flush=True)
        entries.update(measure_pipeline(config, name, pipeline, target, shared, runtime_image, options, cpus))
    report = ServingReport(
        target=target,
        cpus=cpus,
        started=started_at,
        settings=BenchSettings(
            seconds=options.seconds,
            warmup=options.warmup,
            concurrency=list(options.concurrency),
            min_requests=options.min_requests,
            triton_env=dict(options.triton_env),
        ),
        load=Load(before=load_before, after=_load()),
        pipelines=entries,
        seconds=round(time.monotonic() - started, 1),
    )
    write(report, options.output)
    plot(entries[next(reversed(entries))].images.bench, options.output)
    return report
