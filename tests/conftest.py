"""Shared fixtures. Engine-backed tests live in tests/engine and carry the `engine` marker."""

from pathlib import Path

import pytest

from hpsforge.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def config():
    return load_config()
