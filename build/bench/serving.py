"""`nox -s bench -- cpu --serving [PIPELINES]`: how each pipeline serves, beside the same work with
no server and behind the naive stack, on the same cores and in one run.

Per pipeline, for its golden request and a larger one (`[bench]` in goldens/cases.toml):
  - in-process: the bundle's model.py work called directly (bench/inprocess.py) in P processes of
    T Paddle threads, one request per call (and 8 per call, what a dynamic batch hands over);
  - Triton: the pipeline image, driven over HTTP and gRPC by a closed-loop client
    (bench/loadgen.py) at each concurrency, with its stage timings (hps_stage_seconds) and
    Triton's own statistics (queue time, batch size) read around the runs;
  - Flask + gunicorn: the same work behind gunicorn in the bench image (bench/flask_app.py), in
    the configurations a user would try.
Every server first answers every golden case (checked), and every measured answer must be an
errorCode 0 envelope. The figures go to output/bench/serving.json, a table and a plot
(output/bench/serving.png, drawn in the bench image with the bench-only matplotlib). Printed,
never asserted.

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hpsforge.bundle import assemble, goldens
from hpsforge.bundle.client_sdk import ready, stages
from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import (
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from hpsforge.core.pipelines import Pipeline, image_slug
from hpsforge.core.project import Project
from hpsforge.core.settings import PROJECT_ROOT, settings
from hpsforge.images import buildkit, graph, pipeline_images, rc, runtime
from hpsforge.images.containers import fetch_wheelhouse
from hpsforge.inputs import model_files
from hpsforge.inputs.store import cache_root, scratch_dir
from hpsforge.locks import images_lock, pip_locks
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

BENCH_TOOLS = PROJECT_ROOT / "bench"
REPORT = "serving.json"
PLOT = "serving.png"
TARGET_CONCURRENCY = 8  # where the throughput targets are read
READY_TIMEOUT_S = 300
SHM_SIZE = "256m"
METRICS_INTERVAL_S = 1.0  # hps_server flushes its metrics this often (HPS_METRICS_INTERVAL_S)


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
    protocols: tuple[str, ...] = ("http", "grpc")
    before: dict[str, str] = field(default_factory=dict)  # pipeline -> Triton image measured as "before"
    triton_env: dict[str, str] = field(default_factory=dict)  # extra environment of the Triton containers
    output: Path = field(default_factory=lambda: default_output_dir())


def default_output_dir() -> Path:
    """output/bench: where serving.json and serving.png go by default."""
    return settings().output_dir / "bench"


# --- the bench images ----------------------------------------------------------------------------


def bench_image(config: ProjectConfig, name: str, pipeline: Pipeline, target: str,
                runtime_image: images_lock.ImageRecord, rc_image: images_lock.ImageRecord,
                pipeline_image: images_lock.ImageRecord) -> images_lock.ImageRecord:
    """The runtime + the bench-only tools + the pipeline's server bundle (the same bundle as its
    pipeline image: checked by hash). Never recorded, never released."""
    lock = pip_locks.lock_path(pip_locks.BENCH)
    if differences := pip_locks.shared_pin_differences(lock, pip_locks.lock_path(target)):
        raise HpsforgeError(f"{lock} pins packages of the {target} runtime at other versions: "
                            + "; ".join(differences), hint=pip_locks.refresh_command(pip_locks.BENCH))
    wheels = fetch_wheelhouse(pip_locks.BENCH, rc_image, lock_path=lock)
    with tempfile.TemporaryDirectory(prefix=f"bench-{image_slug(name)}-", dir=scratch_dir()) as tmp:
        context = Path(tmp)
        server = context / pipeline_images.SERVER_IN_IMAGE.relative_to("/")
        assemble.stage_server(name, pipeline, server)
        if pipeline_images.input_sha256(runtime_image, server) != pipeline_image.input_sha256:
            raise HpsforgeError(f"{pipeline_image.reference} was not built from the current {name} sources",
                                hint=f"rebuild it with `nox -s images -- {target}`")
        (context / "requirements.txt").write_bytes(lock.read_bytes())
        inputs = {"runtime": runtime_image.digest, "dockerfile": sha256_file(settings().dockerfiles / "bench.Dockerfile"),
                  "lock": sha256_file(lock), "pipeline": pipeline_image.input_sha256}
        digest = sha256_bytes(canonical_json(inputs).encode())
        # copy_only: exported straight into the engine (no whole-image timestamp rewrite): a
        # bench image need not be bit-for-bit reproducible, only built from locked inputs.
        return buildkit.build(buildkit.ImageBuild(
            role=f"bench-{image_slug(name)}-{target}", dockerfile=settings().dockerfiles / "bench.Dockerfile", context=context,
            reference=f"hpsforge/bench-{image_slug(name)}-{target}:{digest[:12]}",
            source_date_epoch=config.base.source_date_epoch, input_sha256=digest,
            parents=(("runtime", runtime_image),), folders=(("wheelhouse", wheels),), copy_only=True,
        ))


# --- containers ------------------------------------------------------------------------------------


@dataclass
class Server:
    container: str
    http: str  # host:port on the host, for the golden cases, metrics and statistics
    metrics: str | None
    ready_s: float


def _host_port(container: str, port: int) -> str:
    bound = docker.container.inspect(container).network_settings.ports[f"{port}/tcp"][0]
    return f"127.0.0.1:{bound['HostPort']}"


def _running(container: str) -> bool:
    try:
        return docker.container.inspect(container).state.running
    except DockerException:
        return False


@contextmanager
def _server(image: str, label: str, ports: tuple[int, ...], metrics_port: int | None = None,
            ready_path: str = ready.READY_PATH, **options):
    """A detached container publishing `ports` on 127.0.0.1, once `ready_path` answers 200."""
    name = f"hps-bench-{label}-{os.getpid()}"
    try:
        docker.run(image, detach=True, name=name, shm_size=SHM_SIZE,
                   publish=[("127.0.0.1:", port) for port in ports], **options)
    except DockerException as error:
        raise HpsforgeError(f"cannot start {image}: {(error.stderr or '').strip()[-400:]}") from None
    try:
        http = _host_port(name, ports[0])
        try:
            ready_s = ready.wait_until(lambda: ready.http_ready(http, ready_path), READY_TIMEOUT_S,
                                       alive=lambda: _running(name), what=f"{label} ({image})")
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
        return error.code, error.read()


def _triton_send(http: str) -> goldens.Send:
    def send(model: str, request: dict) -> dict:
        body = json.dumps({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1],
                                       "data": [json.dumps(request, ensure_ascii=False)]}]}).encode()
        status, reply = _post(f"http://{http}/v2/models/{model}/infer", body)
        if status != 200:
            return {"errorCode": None, "errorMsg": f"HTTP {status}: {reply[:300]!r}"}
        return json.loads(json.loads(reply)["outputs"][0]["data"][0])
    return send


def _json_send(http: str) -> goldens.Send:
    def send(model: str, request: dict) -> dict:
        status, reply = _post(f"http://{http}/{model}", document_bytes(request))
        return json.loads(reply) if status == 200 else {"errorCode": None, "errorMsg": f"HTTP {status}"}
    return send


def document_bytes(request: dict) -> bytes:
    """The request document as every client of the benchmark sends it (bench/inprocess.py too)."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _tool(image: str, arguments: list[str], volumes: list[tuple], network: str | None = None) -> list[dict]:
    """Run a bench tool (python3 /bench/<tool>) in the bench image; its JSON lines."""
    try:
        output = docker.run(image, ["python3", *arguments], remove=True, entrypoint="",
                            networks=[network] if network else [], shm_size=SHM_SIZE,
                            volumes=[(str(BENCH_TOOLS), "/bench", "ro"), *volumes],
                            envs={"HPS_LOG_REQUESTS": "0"})
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
    files = {}
    for workload, case in workloads.items():
        path = folder / f"{workload}.json"
        path.write_bytes(document_bytes(outcomes[case].request))
        path.chmod(0o644)
        files[workload] = (outcomes[case].case.model, path)
    return files


def _triton_statistics(http: str, model: str) -> dict:
    try:
        with urllib.request.urlopen(f"http://{http}/v2/models/{model}/stats", timeout=10) as response:
            entry = json.loads(response.read())["model_stats"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return {}
    stats = entry["inference_stats"]
    return {"inferences": entry.get("inference_count", 0), "executions": entry.get("execution_count", 0),
            "queue_ns": stats["queue"]["ns"], "queue_count": stats["queue"]["count"],
            "compute_ns": stats["compute_infer"]["ns"], "compute_count": stats["compute_infer"]["count"]}


def _statistics_delta(after: dict, before: dict) -> dict:
    if not after or not before:
        return {}
    delta = {key: after[key] - before.get(key, 0) for key in after}
    return {"mean_batch": delta["inferences"] / delta["executions"] if delta["executions"] else None,
            "queue_ms": delta["queue_ns"] / delta["queue_count"] / 1e6 if delta["queue_count"] else None,
            "compute_ms": delta["compute_ns"] / delta["compute_count"] / 1e6 if delta["compute_count"] else None}


def _cgroup_cpu_file(container: str) -> Path | None:
    """The host file holding the container's CPU usage (cgroup v1 cpuacct, or v2), if found."""
    identifier = docker.container.inspect(container).id
    for candidate in (Path("/sys/fs/cgroup/cpuacct/docker") / identifier / "cpuacct.usage",
                      Path("/sys/fs/cgroup/docker") / identifier / "cpu.stat",
                      Path("/sys/fs/cgroup/system.slice") / f"docker-{identifier}.scope" / "cpu.stat"):
        if candidate.is_file():
            return candidate
    return None


def _loadgen(bench: str, server: str, protocol: str, port: int, model: str, document: Path,
             levels: tuple[int, ...], options: BenchOptions) -> list[dict]:
    arguments = ["/bench/loadgen.py", "--protocol", protocol, "--port", str(port), "--model", model,
                 "--document", f"/work/{document.name}", "--concurrency", ",".join(map(str, levels)),
                 "--seconds", str(options.seconds), "--warmup", str(options.warmup),
                 "--min-requests", str(options.min_requests)]
    volumes = [(str(document.parent), "/work", "ro")]
    if cpu_file := _cgroup_cpu_file(server):
        volumes.append((str(cpu_file), "/server-cpu", "ro"))
        arguments += ["--server-cpu", "/server-cpu"]
    points = _tool(bench, arguments, volumes, network=f"container:{server}")
    for point in points:
        if point["failed"] or point["errors"]:
            raise HpsforgeError(f"{model} over {protocol} at concurrency {point['concurrency']}: "
                                f"{point['failed']} answers were not errorCode 0 {point['errors']}")
        label = {"http": "HTTP", "grpc": "gRPC", "json": "Flask"}[protocol]
        print(f"hpsforge: bench:   {label:5} c={point['concurrency']:<3} {point['qps']:8.1f} req/s  "
              f"p50 {point['p50_ms']:7.1f}  p90 {point['p90_ms']:7.1f}  p99 {point['p99_ms']:7.1f} ms  "
              f"server CPU {_fmt(point.get('server_cpu_ms'), '{:.2f}')} ms/req  (client {point['client_cpu_s']:.1f} s CPU)",
              flush=True)
    return points


def _measure_triton(image: str, bench: str, pipeline_dir: Path, fixtures: Path | None, workloads: dict[str, str],
                    work: Path, options: BenchOptions, label: str) -> dict:
    print(f"hpsforge: bench: Triton {image}", flush=True)
    results: dict = {}
    with _server(image, label, (8000, 8001, 8002), metrics_port=8002, envs=options.triton_env) as server:
        run = _check_goldens(pipeline_dir, _triton_send(server.http), fixtures, image)
        files = _workload_files(run, workloads, work)
        for workload, (model, document) in files.items():
            before_stages = stages.parse(stages.scrape(server.metrics))
            before_statistics = _triton_statistics(server.http, model)
            entry = {"model": model}
            for protocol in options.protocols:
                print(f"hpsforge: bench: {workload} over {protocol}", flush=True)
                entry[protocol] = _loadgen(bench, server.container, protocol, 8000 if protocol == "http" else 8001,
                                           model, document, options.concurrency, options)
            time.sleep(METRICS_INTERVAL_S + 0.5)  # the model processes' last counts reach Triton
            entry["stages"] = stages.summary(stages.difference(stages.parse(stages.scrape(server.metrics)),
                                                               before_stages))
            entry["statistics"] = _statistics_delta(_triton_statistics(server.http, model), before_statistics)
            results[workload] = entry
        results["ready_s"] = server.ready_s
    return results


def flask_configs(cpus: int) -> list[dict]:
    """What a user would try: a worker per CPU, one worker with a thread per CPU, one more worker
    than CPUs; Paddle gets the CPUs divided among the workers."""
    return [{"label": f"-w {cpus}", "workers": cpus, "threads": 1},
            {"label": f"-w 1 --threads {cpus}", "workers": 1, "threads": cpus},
            {"label": f"-w {cpus + 1}", "workers": cpus + 1, "threads": 1}]


def _measure_flask(bench: str, pipeline_dir: Path, fixtures: Path | None, workloads: dict[str, str], work: Path,
                   options: BenchOptions, cpus: int, label: str) -> list[dict]:
    """Every configuration at concurrency 1 and the target one; the best one also at the rest."""
    focus = tuple(level for level in options.concurrency if level in (1, TARGET_CONCURRENCY)) or options.concurrency
    measured = []

    def run(config: dict, levels: tuple[int, ...]) -> dict:
        command = ["gunicorn", "--chdir", "/bench", "-b", "0.0.0.0:8000", "-w", str(config["workers"]),
                   "--threads", str(config["threads"]), "--timeout", "600", "--log-level", "warning",
                   "flask_app:app"]
        envs = {"HPS_CPU_THREADS": str(max(1, cpus // config["workers"])), "HPS_LOG_REQUESTS": "0"}
        print(f"hpsforge: bench: Flask+gunicorn {config['label']}", flush=True)
        with _server(bench, f"{label}-flask", (8000,), entrypoint="", command=command, envs=envs,
                     volumes=[(str(BENCH_TOOLS), "/bench", "ro")], ready_path="/health") as server:
            golden_run = _check_goldens(pipeline_dir, _json_send(server.http), fixtures, f"Flask {config['label']}")
            files = _workload_files(golden_run, workloads, work)
            return {workload: _loadgen(bench, server.container, "json", 8000, model, document, levels, options)
                    for workload, (model, document) in files.items()}

    for config in flask_configs(cpus)[:1 if options.quick else None]:
        measured.append({**config, "workloads": run(config, focus)})
    rest = tuple(level for level in options.concurrency if level not in focus)
    if rest:
        # The best configuration of each workload (at the target concurrency) gets the other levels
        # too, so the plot has its whole curve; one more start per configuration that is best.
        for entry in measured:
            best_for = [workload for workload in workloads if entry is max(
                measured, key=lambda other: _qps_at(other["workloads"][workload], TARGET_CONCURRENCY))]
            if best_for:
                extra = run(entry, rest)
                for workload in best_for:
                    entry["workloads"][workload] = sorted(entry["workloads"][workload] + extra[workload],
                                                          key=lambda point: point["concurrency"])
    return measured


def _qps_at(points: list[dict], level: int) -> float:
    return next((point["qps"] for point in points if point["concurrency"] == level), 0.0)


def _point_at(points: list[dict], level: int) -> dict | None:
    return next((point for point in points if point["concurrency"] == level), None)


def in_process_configs(cpus: int) -> list[str]:
    configs = [f"1x{cpus}x1"]
    if cpus > 1:
        configs += ["1x1x1", f"{cpus}x1x1"]
    return configs + [f"{cpus}x1x8"]


def _measure_in_process(bench: str, name: str, workloads: dict[str, str], fixtures: Path | None,
                        options: BenchOptions, cpus: int) -> list[dict]:
    configs = in_process_configs(cpus)[:1 if options.quick else None]
    print(f"hpsforge: bench: {name} in-process ({', '.join(configs)}: processes x threads x batch)", flush=True)
    volumes = [(str(PROJECT_ROOT / "pipelines" / name), f"/src/pipelines/{name}", "ro"),
               (str(PROJECT_ROOT / "build" / "bundle" / "goldens.py"), "/src/goldens.py", "ro")]
    arguments = ["/bench/inprocess.py", "--pipeline-dir", f"/src/pipelines/{name}", "--goldens-module", "/src/goldens.py",
                 "--configs", ",".join(configs), "--seconds", str(options.seconds),
                 "--warmup", str(options.warmup), "--min-requests", str(options.min_requests)]
    if fixtures is not None:
        volumes.append((str(fixtures), "/fixtures", "ro"))
        arguments += ["--fixtures", "/fixtures"]
    for workload, case in workloads.items():
        arguments += ["--workload", f"{workload}={case}"]
    (report,) = _tool(bench, arguments, volumes)
    for config in report["configs"]:
        for workload, figures in config["workloads"].items():
            print(f"hpsforge: bench:   in-process {config['processes']}x{config['threads']}x{config['batch']} "
                  f"{workload:6} {figures['qps']:8.1f} req/s  p50 {figures['p50_ms']:7.1f} ms  "
                  f"CPU {_fmt(figures.get('cpu_ms'), '{:.2f}')} ms/req", flush=True)
    return report["configs"]


def _summary(workload: str, entry: dict) -> dict:
    """The figures the targets are read from, for one workload."""
    summary: dict = {}
    batch1 = [config for config in entry.get("in_process", []) if config["batch"] == 1]
    if batch1:
        best = max(batch1, key=lambda config: config["workloads"][workload]["qps"])
        single = [config for config in batch1 if config["processes"] == 1]
        fastest = min(single or batch1, key=lambda config: config["workloads"][workload]["p50_ms"])
        summary["in_process_best"] = {"label": f"{best['processes']}x{best['threads']}",
                                      "qps": best["workloads"][workload]["qps"],
                                      "cpu_ms": best["workloads"][workload].get("cpu_ms")}
        summary["in_process_p50"] = {"label": f"{fastest['processes']}x{fastest['threads']}",
                                     "p50_ms": fastest["workloads"][workload]["p50_ms"]}
    batched = [config for config in entry.get("in_process", []) if config["batch"] > 1]
    if batched:
        best = max(batched, key=lambda config: config["workloads"][workload]["qps"])
        summary["in_process_batched"] = {"label": f"{best['processes']}x{best['threads']}, {best['batch']} per call",
                                         "qps": best["workloads"][workload]["qps"]}
    if entry.get("flask"):
        best = max(entry["flask"], key=lambda config: _qps_at(config["workloads"][workload], TARGET_CONCURRENCY))
        summary["flask_best"] = {"label": best["label"], "qps": _qps_at(best["workloads"][workload], TARGET_CONCURRENCY),
                                 "points": best["workloads"][workload]}
        summary["flask_p50_c1_ms"] = min((point["p50_ms"] for config in entry["flask"]
                                          if (point := _point_at(config["workloads"][workload], 1))), default=None)
    for key in ("triton", "triton_before"):
        triton = entry.get(key, {}).get(workload)
        if not triton:
            continue
        for protocol in ("http", "grpc"):
            target = _point_at(triton.get(protocol, []), TARGET_CONCURRENCY)
            one = _point_at(triton.get(protocol, []), 1)
            figures = {"qps_c8": target["qps"] if target else None, "p50_c1_ms": one["p50_ms"] if one else None,
                       "cpu_ms_c8": target.get("server_cpu_ms") if target else None}
            if target and "in_process_best" in summary:
                figures["vs_in_process"] = target["qps"] / summary["in_process_best"]["qps"]
            if target and "flask_best" in summary and summary["flask_best"]["qps"]:
                figures["vs_flask"] = target["qps"] / summary["flask_best"]["qps"]
            if one and "in_process_p50" in summary:
                figures["c1_overhead_ms"] = one["p50_ms"] - summary["in_process_p50"]["p50_ms"]
            summary[f"{key}_{protocol}"] = figures
    return summary


def measure_pipeline(config: ProjectConfig, name: str, pipeline: Pipeline, target: str, shared: dict,
                     runtime_image: images_lock.ImageRecord, options: BenchOptions, cpus: int) -> dict:
    golden_file = goldens.load_file(PROJECT_ROOT / "pipelines" / name)
    if golden_file.bench is None:
        raise HpsforgeError(f"pipelines/{name}/goldens/cases.toml has no [bench] table",
                            hint="name its golden and large workload cases there (see build/bundle/goldens.py)")
    workloads = golden_file.bench.named()
    pipeline_image = pipeline_images.build(config, name, pipeline, target, runtime_image)
    bench = bench_image(config, name, pipeline, target, runtime_image, shared[rc.ROLE], pipeline_image).reference
    fixtures = None
    if pipeline.fixtures:
        fixtures = cache_root() / "fixtures" / name
        model_files.extract(name, pipeline.fixtures, fixtures)
    pipeline_dir = PROJECT_ROOT / "pipelines" / name
    entry: dict = {"images": {"triton": pipeline_image.reference, "bench": bench}, "cases": workloads,
                   "load": {"before": _load()}}
    slug = image_slug(name)
    with tempfile.TemporaryDirectory(prefix=f"serving-{slug}-", dir=scratch_dir()) as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        if options.in_process:
            entry["in_process"] = _measure_in_process(bench, name, workloads, fixtures, options, cpus)
        entry["triton"] = _measure_triton(pipeline_image.reference, bench, pipeline_dir, fixtures, workloads,
                                          work, options, f"{slug}-triton")
        if name in options.before:
            entry["images"]["triton_before"] = options.before[name]
            entry["triton_before"] = _measure_triton(options.before[name], bench, pipeline_dir, fixtures, workloads,
                                                     work, options, f"{slug}-before")
        if options.flask:
            entry["flask"] = _measure_flask(bench, pipeline_dir, fixtures, workloads, work, options, cpus, slug)
    entry["summary"] = {workload: _summary(workload, entry) for workload in workloads}
    entry["load"]["after"] = _load()
    return entry


# --- the report ------------------------------------------------------------------------------------


def _load() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _fmt(value, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def table(report: dict) -> str:
    lines = [f"serving benchmark ({report['target']}, {report['cpus']} CPUs; {report['settings']['seconds']:g} s per "
             f"point after {report['settings']['warmup']:g} s warm-up; load average {report['load']['before']} before, "
             f"{report['load']['after']} after)",
             "",
             f"{'pipeline / workload':34} {'in-process':>17} {'batched':>8} {'Flask c=8':>17} {'Triton c=8':>15} "
             f"{'÷ in-proc':>10} {'÷ Flask':>10} {'c=1 p50 ms':>28} {'CPU ms/req':>14}",
             f"{'':34} {'best req/s':>17} {'8/call':>8} {'best req/s':>17} {'HTTP / gRPC':>15} "
             f"{'HTTP/gRPC':>10} {'HTTP/gRPC':>10} {'in-proc  HTTP  gRPC  (+HTTP)':>28} {'in-proc/HTTP':>14}"]
    for name, entry in report["pipelines"].items():
        for workload, summary in entry["summary"].items():
            for key, title in (("triton", ""), ("triton_before", " (before)")):
                http, grpc = summary.get(f"{key}_http"), summary.get(f"{key}_grpc")
                if not http and not grpc:
                    continue
                http, grpc = http or {}, grpc or {}
                inproc = summary.get("in_process_best", {})
                flask = summary.get("flask_best", {})
                p50 = summary.get("in_process_p50", {})
                overhead = http.get("c1_overhead_ms")
                lines.append(
                    f"{(name + ' / ' + workload + ' (' + entry['cases'][workload] + ')' + title)[:34]:34} "
                    f"{_fmt(inproc.get('qps')) + ' (' + inproc.get('label', '-') + ')':>17} "
                    f"{_fmt(summary.get('in_process_batched', {}).get('qps')):>8} "
                    f"{_fmt(flask.get('qps')) + ' (' + flask.get('label', '-') + ')':>17} "
                    f"{_fmt(http.get('qps_c8')) + ' / ' + _fmt(grpc.get('qps_c8')):>15} "
                    f"{_fmt(http.get('vs_in_process'), '{:.2f}') + '/' + _fmt(grpc.get('vs_in_process'), '{:.2f}'):>10} "
                    f"{_fmt(http.get('vs_flask'), '{:.2f}') + '/' + _fmt(grpc.get('vs_flask'), '{:.2f}'):>10} "
                    f"{_fmt(p50.get('p50_ms')):>8} {_fmt(http.get('p50_c1_ms')):>5} {_fmt(grpc.get('p50_c1_ms')):>5} "
                    f"{'(' + _fmt(overhead, '{:+.1f}') + ')':>8} "
                    f"{_fmt(inproc.get('cpu_ms')) + '/' + _fmt(http.get('cpu_ms_c8')):>14}")
    lines += ["", "Targets at c=8: ≥ 0.90 × in-process best, ≥ 1.20 × Flask best; c=1: p50 ≤ in-process + 3 ms.",
              "In-process PxT: P processes of T Paddle threads, one request per call; 8/call: eight per call. "
              "CPU ms/req: CPU time spent per answer (every process of the server; Triton's container at c=8), less sensitive to other load than the rates."]
    for name, entry in report["pipelines"].items():
        for workload in entry["cases"]:
            triton = entry.get("triton", {}).get(workload, {})
            if triton.get("stages"):
                statistics = triton.get("statistics") or {}
                lines += ["", f"{name} / {workload}: stage times in the server (hps_stage_seconds, every measured "
                              f"request; Triton: mean batch {_fmt(statistics.get('mean_batch'), '{:.2f}')}, "
                              f"queue {_fmt(statistics.get('queue_ms'), '{:.2f}')} ms, "
                              f"execution {_fmt(statistics.get('compute_ms'), '{:.2f}')} ms)",
                          stages.table(triton["stages"])]
            inproc = [config for config in entry.get("in_process", []) if config["batch"] == 1 and config["processes"] == 1]
            if inproc:
                means = inproc[0]["workloads"][workload].get("stages_mean_ms", {})
                lines.append("  in-process " + f"{inproc[0]['processes']}x{inproc[0]['threads']}: "
                             + ", ".join(f"{stage} {means[stage]:.2f}" for stage in stages.STAGES if stage in means)
                             + " ms (means)")
    return "\n".join(lines)


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # so every container of the run is removed on the way out


def run(project: Project, pipelines: dict[str, Pipeline], target: str, options: BenchOptions) -> dict:
    """Measure every named pipeline; write the JSON report and the plot; the report."""
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _run(project, pipelines, target, options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(project: Project, pipelines: dict[str, Pipeline], target: str, options: BenchOptions) -> dict:
    config = project.config
    if target != pip_locks.BENCH_BASE_TARGET:
        raise HpsforgeError(f"the serving benchmark measures the {pip_locks.BENCH_BASE_TARGET} target "
                            f"(its bench images follow lock/requirements/{pip_locks.BENCH_BASE_TARGET}.txt), not {target}")
    # The runtime's lock covers every pipeline's requirements, whichever are measured.
    shared = graph.BuildGraph.of(project, [target], with_pipelines=False).build()
    runtime_image = shared[runtime.role(target)]
    cpus = int(docker.system.info().n_cpu or os.cpu_count() or 1)
    report = {"schema": 1, "target": target, "cpus": cpus, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "settings": {"seconds": options.seconds, "warmup": options.warmup,
                           "concurrency": list(options.concurrency), "min_requests": options.min_requests,
                           "triton_env": options.triton_env},
              "load": {"before": _load()}, "pipelines": {}}
    started = time.monotonic()
    for name, pipeline in pipelines.items():
        print(f"hpsforge: bench: {name}", flush=True)
        report["pipelines"][name] = measure_pipeline(config, name, pipeline, target, shared, runtime_image,
                                                     options, cpus)
    report["load"]["after"] = _load()
    report["seconds"] = round(time.monotonic() - started, 1)
    options.output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(options.output / REPORT, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    last = report["pipelines"][next(reversed(report["pipelines"]))]
    _plot(last["images"]["bench"], options.output)
    return report


def _plot(bench: str, folder: Path) -> None:
    try:
        docker.run(bench, ["python3", "/bench/plot.py", f"/out/{REPORT}", f"/out/{PLOT}"], remove=True, entrypoint="",
                   user=f"{os.getuid()}:{os.getgid()}", envs={"MPLCONFIGDIR": "/tmp/matplotlib"},
                   volumes=[(str(BENCH_TOOLS), "/bench", "ro"), (str(folder), "/out", "rw")])
    except DockerException as error:
        raise HpsforgeError(f"the plot failed in {bench}:\n{(error.stderr or '').strip()[-1500:]}") from None
