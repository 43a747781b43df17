"""Shared fixtures. Engine-backed tests live in tests/engine and carry the `engine` marker."""

import os
import sys
from pathlib import Path

# testcontainers' reaper image cannot be pulled here (no registry); containers are stopped by
# the fixtures themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import pytest

from hpsforge import engine, graph
from hpsforge.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Test-support modules import as tests.support.* (appended: the project's own build/ must not
# shadow PyPA's `build`).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))

from tests.support.fixtures import signing_key  # noqa: E402,F401  (a fixture: imported to register it)


@pytest.fixture(scope="session")
def config():
    return load_config()


# Engine-backed fixtures: the real Docker engine and the images built as `nox -s images` does.

@pytest.fixture(scope="session")
def engine_status(config):
    """The engine, brought up by the same code path as `nox -s engine`."""
    return engine.ensure(config.engine)


@pytest.fixture(scope="session")
def shared_images(config, engine_status):
    """base and rc, built (or found warm in the BuildKit cache) as `nox -s images` does."""
    return graph.build_shared_images(config, no_cache=False)


@pytest.fixture(scope="session")
def runtime_cpu(config, shared_images):
    """The cpu runtime image, built (or found up to date) as `nox -s images -- cpu` does."""
    from hpsforge import runtime
    from hpsforge.pipelines import load_pipelines

    return runtime.build(config, load_pipelines(), "cpu", shared_images["base"], shared_images["rc"])


SERVED_PIPELINE = "image_classification"  # the smallest pipeline image


@pytest.fixture
def serve_slot(config, runtime_cpu):
    """(container name, free host ports) for `serve.start(SERVED_PIPELINE, "cpu", ...)`: the image is
    built, no earlier container is in the way, and the container and its state volume go afterwards."""
    import socket

    from python_on_whales import docker

    from hpsforge import pipeline_images, serve
    from hpsforge.pipelines import load_pipelines

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    pipeline_images.build(config, SERVED_PIPELINE, load_pipelines()[SERVED_PIPELINE], "cpu", runtime_cpu)
    name = serve.container_name(SERVED_PIPELINE, "cpu")
    if docker.container.exists(name):
        docker.container.remove(name, force=True)
    yield name, {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    docker.container.remove(name, force=True, volumes=True)
    if docker.volume.exists(f"{name}-state"):
        docker.volume.remove(f"{name}-state")
