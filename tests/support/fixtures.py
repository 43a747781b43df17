"""pytest fixtures around tests/support/debian_repository.py (tests/conftest.py makes them visible)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.debian_repository import SigningKey


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    """One throwaway archive key for the whole session; its gpg-agent is stopped at the end."""
    with SigningKey.generate(tmp_path_factory.mktemp("signing-key")) as key:
        yield key
