"""Benchmarks that print figures (never timed tests): how long a target's images take to rebuild.
How the pipeline images serve is the serving benchmark's (serving/)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from python_on_whales import docker

from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.project import Project
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.images import buildkit, graph, runtime
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks import images_lock

# A stand-in for a pipeline's server code until pipeline images exist: a python-backend model.
SAMPLE_REPOSITORY = PROJECT_ROOT / "tests" / "assets" / "model_repository"
SERVER_DOCKERFILE = "FROM runtime\nCOPY --chown=1000:1000 model_repository /models\n"


Built = TypeVar("Built")  # an image's record, or a walk's records by role


def _timed(label: str, action: Callable[[], Built]) -> tuple[str, float, Built]:
    started = time.monotonic()
    image = action()
    seconds = time.monotonic() - started
    print(f"hpsforge: bench: {label}: {seconds:.1f} s", flush=True)
    return label, seconds, image


def server_image(
    runtime_image: images_lock.ImageRecord, context: Path, epoch: int, no_cache: bool = False
) -> images_lock.ImageRecord:
    """A copy-only image serving `context`/model_repository on the runtime."""
    files = sorted(path for path in (context / "model_repository").rglob("*") if path.is_file())
    tree = canonical_json([(str(path.relative_to(context)), sha256_file(path)) for path in files])
    digest = sha256_bytes((tree + runtime_image.digest + SERVER_DOCKERFILE).encode())
    return buildkit.build(
        buildkit.ImageBuild(
            role="bench-server",
            dockerfile=context / "Dockerfile",
            context=context,
            reference=f"hpsforge/bench-server:{digest[:12]}",
            source_date_epoch=epoch,
            input_sha256=digest,
            parents=(("runtime", runtime_image),),
            copy_only=True,
        ),
        no_cache=no_cache,
    )


def rebuild(project: Project, target: str) -> list[tuple[str, float]]:
    """Cold build, warm no-change rebuild, and a rebuild after a server-code-only change."""
    config = project.config
    nodes = graph.BuildGraph.of(project, [target], with_pipelines=False)
    nodes.check()
    runtime_node = nodes.nodes[runtime.role(target)]
    shared = graph.build_shared_images(config)

    def build_runtime(no_cache: bool = False) -> images_lock.ImageRecord:
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
        figures.append(
            _timed(
                "server image on the runtime, first build (no cache)",
                lambda: server_image(runtime_image, context, epoch, no_cache=True),
            )
        )
        model = next((context / "model_repository").rglob("model.py"))
        model.write_text(model.read_text() + f"\n# changed by the benchmark at {time.time()}\n")
        figures.append(
            _timed("server image after a code-only change", lambda: server_image(runtime_image, context, epoch))
        )
    return [(label, seconds) for label, seconds, _ in figures]


def registry_cache(project: Project, target: str, reference: str) -> list[tuple[str, float]]:
    """The target's images rebuilt with an empty local BuildKit cache: from nothing, then reading a
    registry cache written first (what a second build machine sees). Empties the engine's whole
    BuildKit cache twice, whoever's it holds: `bench` runs it only with --prune-local-cache."""
    nodes = graph.BuildGraph.of(project, [target])

    def rebuild(backend: buildkit.Backend) -> dict[str, images_lock.ImageRecord]:
        return nodes.build(graph.BuildOptions(backend=backend))

    def empty_local_cache() -> None:
        docker.buildx.prune(all=True)

    rebuild(buildkit.Backend(cache_to=reference, reuse=False))  # writes the registry cache
    empty_local_cache()
    figures = [
        _timed(
            f"{target} images, empty BuildKit cache, no registry cache", lambda: rebuild(buildkit.Backend(reuse=False))
        )
    ]
    empty_local_cache()
    figures.append(
        _timed(
            f"{target} images, empty BuildKit cache, reading {reference}",
            lambda: rebuild(buildkit.Backend(cache_from=reference, reuse=False)),
        )
    )
    return [(label, seconds) for label, seconds, _ in figures]
