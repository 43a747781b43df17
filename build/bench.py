"""Benchmarks that print figures (never timed tests): how long a target's images take to rebuild,
and how each pipeline image serves (size, start to ready, latency of one request)."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from python_on_whales import docker

from hpsforge import audit, buildkit, goldens, graph, models, pipeline_images, runtime
from hpsforge.config import PROJECT_ROOT, ProjectConfig
from hpsforge.errors import HpsforgeError
from hpsforge.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.pipelines import Pipeline, load_pipelines
from hpsforge.store import cache_root, scratch_dir

# A stand-in for a pipeline's server code until pipeline images exist: a python-backend model.
SAMPLE_REPOSITORY = PROJECT_ROOT / "tests" / "assets" / "model_repository"
SERVER_DOCKERFILE = "FROM runtime\nCOPY --chown=1000:1000 model_repository /models\n"


def _timed(label: str, action) -> tuple[str, float, buildkit.ImageRecord]:
    started = time.monotonic()
    image = action()
    seconds = time.monotonic() - started
    print(f"hpsforge: bench: {label}: {seconds:.1f} s", flush=True)
    return label, seconds, image


def server_image(runtime_image: buildkit.ImageRecord, context: Path, epoch: int,
                 no_cache: bool = False) -> buildkit.ImageRecord:
    """A copy-only image serving `context`/model_repository on the runtime."""
    files = sorted(path for path in (context / "model_repository").rglob("*") if path.is_file())
    tree = canonical_json([(str(path.relative_to(context)), sha256_file(path)) for path in files])
    digest = sha256_bytes((tree + runtime_image.digest + SERVER_DOCKERFILE).encode())
    return buildkit.build(buildkit.ImageBuild(
        role="bench-server", dockerfile=context / "Dockerfile", context=context,
        reference=f"hpsforge/bench-server:{digest[:12]}", source_date_epoch=epoch, input_sha256=digest,
        parents=(("runtime", runtime_image),), copy_only=True,
    ), no_cache=no_cache)


def rebuild(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str) -> list[tuple[str, float]]:
    """Cold build, warm no-change rebuild, and a rebuild after a server-code-only change."""
    nodes = graph.BuildGraph.of(config, pipelines, [target], with_pipelines=False)
    runtime_node = nodes.nodes[runtime.role(target)]
    shared = graph.build_shared_images(config)
    def build_runtime(no_cache: bool = False):
        return runtime_node.build(shared, graph.BuildOptions(no_cache=no_cache))
    figures = [_timed(f"{target} runtime, cold (no BuildKit cache)", lambda: build_runtime(no_cache=True))]
    figures.append(_timed(f"{target} runtime, warm, nothing changed", build_runtime))
    runtime_image = figures[-1][2]
    epoch = config.base.source_date_epoch
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix="bench-", dir=scratch) as tmp:
        context = Path(tmp)
        shutil.copytree(SAMPLE_REPOSITORY, context / "model_repository")
        (context / "Dockerfile").write_text(SERVER_DOCKERFILE)
        figures.append(_timed("server image on the runtime, first build (no cache)",
                              lambda: server_image(runtime_image, context, epoch, no_cache=True)))
        model = next((context / "model_repository").rglob("model.py"))
        model.write_text(model.read_text() + f"\n# changed by the benchmark at {time.time()}\n")
        figures.append(_timed("server image after a code-only change",
                              lambda: server_image(runtime_image, context, epoch)))
    return [(label, seconds) for label, seconds, _ in figures]


def registry_cache(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str,
                   reference: str) -> list[tuple[str, float]]:
    """The target's images rebuilt with an empty local BuildKit cache: from nothing, then reading a
    registry cache written first (what a second build machine sees)."""
    nodes = graph.BuildGraph.of(config, pipelines, [target])
    def rebuild(backend: buildkit.Backend):
        return nodes.build(graph.BuildOptions(backend=backend))
    def empty_local_cache():
        docker.buildx.prune(all=True)
    rebuild(buildkit.Backend(cache_to=reference, reuse=False))  # writes the registry cache
    empty_local_cache()
    figures = [_timed(f"{target} images, empty BuildKit cache, no registry cache",
                      lambda: rebuild(buildkit.Backend(reuse=False)))]
    empty_local_cache()
    figures.append(_timed(f"{target} images, empty BuildKit cache, reading {reference}",
                          lambda: rebuild(buildkit.Backend(cache_from=reference, reuse=False))))
    return [(label, seconds) for label, seconds, _ in figures]


SERVING_REQUESTS = 20


def _post_json(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def _serving_figures(name: str, record: buildkit.ImageRecord) -> tuple:
    """(start to ready s, median ms, p90 ms) of one pipeline image answering its valid golden case."""
    try:
        golden = goldens.load_file(PROJECT_ROOT / "pipelines" / name)
    except goldens.GoldenError as error:
        raise HpsforgeError(str(error)) from None
    fixtures = None
    if declared := load_pipelines()[name].fixtures:
        fixtures = cache_root() / "fixtures" / name
        models.extract(name, declared, fixtures)
    request = goldens.resolve(golden.valid_case.request, PROJECT_ROOT / "pipelines" / name / "goldens", fixtures, {})
    body = json.dumps({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1],
                                   "data": [json.dumps(request)]}]}).encode()
    started = time.monotonic()
    container = docker.run(record.reference, detach=True, shm_size="256m", publish=[("127.0.0.1:0", 8000)])
    try:
        port = docker.container.inspect(container).network_settings.ports["8000/tcp"][0]["HostPort"]
        base_url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=2).close()
                break
            except OSError:
                if time.monotonic() - started > 300 or not docker.container.inspect(container).state.running:
                    raise HpsforgeError(f"{record.reference} did not get ready:\n{docker.container.logs(container)[-2000:]}")
                time.sleep(0.1)
        ready_s = time.monotonic() - started
        url = f"{base_url}/v2/models/{golden.conformance.model}/infer"
        _post_json(url, body)  # warm-up: first-call allocations are not what a client sees later
        latencies = []
        for _ in range(SERVING_REQUESTS):
            sent = time.perf_counter()
            answer = json.loads(json.loads(_post_json(url, body))["outputs"][0]["data"][0])
            latencies.append((time.perf_counter() - sent) * 1000)
            if found := goldens.problems(golden.valid_case, answer):
                raise HpsforgeError(f"{name}: the golden request answered wrongly: {found}")
    finally:
        docker.container.remove(container, force=True)
    latencies.sort()
    return ready_s, statistics.median(latencies), latencies[int(0.9 * (len(latencies) - 1))]


def serving(target: str) -> list[tuple[str, str]]:
    """Per pipeline image of `target` (as recorded by `nox -s images`): size, start to ready, latency."""
    recorded = buildkit.ImagesLock.read().images
    rows = []
    for name in load_pipelines():
        record = recorded.get(pipeline_images.role(name, target))
        if record is None:
            raise HpsforgeError(f"no {target} image of {name} is recorded", hint=f"build it with `nox -s images -- {target}`")
        unpacked = audit.unpacked_size(buildkit.ensure_layout(record))
        compressed = docker.image.inspect(record.reference).size
        ready_s, median_ms, p90_ms = _serving_figures(name, record)
        golden_case = goldens.load_file(PROJECT_ROOT / "pipelines" / name).valid_case.name
        figure = (f"{unpacked / 1e9:.2f} GB unpacked, {compressed / 1e9:.2f} GB compressed; ready in {ready_s:.1f} s; "
                  f"one request ({golden_case}) {median_ms:.1f} ms median, {p90_ms:.1f} ms p90 of {SERVING_REQUESTS}")
        print(f"hpsforge: bench: {name}: {figure}", flush=True)
        rows.append((name, figure))
    return rows
