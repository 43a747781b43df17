"""Shared fixtures. Engine-backed tests live in tests/engine and carry the `engine` marker."""

import os
from pathlib import Path

# testcontainers' reaper image cannot be pulled here (no registry); containers are stopped by
# the fixtures themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import pytest

from hpsforge import engine, graph
from hpsforge.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
