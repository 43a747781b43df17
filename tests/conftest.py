"""Shared fixtures. Engine-backed tests live in tests/engine and carry the `engine` marker."""

import os
from pathlib import Path

# testcontainers' reaper image cannot be pulled here (no registry); containers are stopped by
# the fixtures themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import pytest

from hpsforge.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def config():
    return load_config()
