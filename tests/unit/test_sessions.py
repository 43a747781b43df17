"""hpsforge.sessions._parse: session arguments after `--`."""

from __future__ import annotations

import pytest
from hpsforge.cli import _parse
from hpsforge.core.errors import HpsforgeError

NO_CACHE = ("--no-cache", "rebuild everything")


def test_no_arguments():
    assert vars(_parse("freeze", [])) == {}


def test_no_cache_flag():
    assert _parse("images", ["--no-cache"], NO_CACHE).no_cache is True
    assert _parse("images", [], NO_CACHE).no_cache is False


def test_unknown_argument():
    with pytest.raises(HpsforgeError) as caught:
        _parse("images", ["--no-cache", "--bogus", "extra"], NO_CACHE)
    message = str(caught.value)
    assert "nox -s images --: unrecognized arguments: --bogus extra" in message
    assert "usage:" in message
    assert "--no-cache" in message  # the hint shows what is accepted


def test_argument_to_a_session_without_options():
    with pytest.raises(HpsforgeError, match="unrecognized arguments"):
        _parse("freeze", ["--no-cache"])


def test_value_given_to_a_flag():
    with pytest.raises(HpsforgeError, match="--no-cache"):
        _parse("images", ["--no-cache=yes"], NO_CACHE)
