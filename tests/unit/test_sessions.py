"""hpsforge.cli: session arguments after `--`, their help, and the checks made before anything runs."""

from __future__ import annotations

import pytest

from hpsforge.cli import _parse
from hpsforge.core.errors import HpsforgeError, UsageError

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


def test_every_session_has_help(capsys):
    from hpsforge import cli

    with pytest.raises(SystemExit) as exited:
        cli.run_repro(["--help"])
    assert exited.value.code == 0
    assert "--compare A.json B.json" in capsys.readouterr().out


def _bench_without_the_engine(monkeypatch) -> list[tuple]:
    """cli.run_bench with the engine and the builds replaced: the calls that would have run."""
    from hpsforge import cli

    calls: list[tuple] = []
    monkeypatch.setattr(cli.engine, "ensure", lambda config: calls.append(("engine",)))
    monkeypatch.setattr(cli.rebuild, "rebuild", lambda project, target: calls.append(("rebuild", target)) or [])
    monkeypatch.setattr(
        cli.rebuild,
        "registry_cache",
        lambda project, target, reference: calls.append(("registry_cache", target, reference)) or [],
    )
    return calls


def test_registry_cache_refuses_to_empty_the_build_cache_unless_told(monkeypatch):
    from hpsforge import cli

    calls = _bench_without_the_engine(monkeypatch)
    with pytest.raises(
        UsageError, match=r"empties the engine's whole BuildKit cache \(`docker buildx prune --all`\)"
    ) as refused:
        cli.run_bench(["cpu", "--registry-cache", "registry.example:5000/cache"])
    assert refused.value.exit_code == 2 and "--prune-local-cache" in str(refused.value)
    with pytest.raises(UsageError, match="--prune-local-cache goes with --registry-cache"):
        cli.run_bench(["cpu", "--prune-local-cache"])
    assert calls == []  # refused before the engine was asked
    cli.run_bench(["cpu", "--registry-cache", "registry.example:5000/cache", "--prune-local-cache"])
    assert calls == [("engine",), ("rebuild", "cpu"), ("registry_cache", "cpu", "registry.example:5000/cache")]


def test_the_help_says_what_registry_cache_prunes(capsys):
    from hpsforge import cli

    with pytest.raises(SystemExit):
        cli.run_bench(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--registry-cache REF also time rebuilds with an empty local BuildKit cache" in shown
    assert "needs --prune-local-cache" in shown
    assert (
        "empty the engine's WHOLE BuildKit cache (`docker buildx prune --all`, twice), other projects' builds" in shown
    )
