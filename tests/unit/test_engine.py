"""hpsforge.engine.check_requirements: what a usable engine must report (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpsforge.core.config import load_config
from hpsforge.core.errors import HpsforgeError
from hpsforge.images.engine import EngineStatus, check_requirements

PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "hpsforge.toml"


@pytest.fixture
def config():
    # The project's engine section, with the minimums pinned so the test does not drift with it.
    return load_config(PROJECT_CONFIG).engine.model_copy(
        update={"minimum_server_version": "26.0", "minimum_buildx_version": "0.13"}
    )


def _message(status: EngineStatus, config) -> str:
    with pytest.raises(HpsforgeError) as caught:
        check_requirements(status, config)
    return str(caught.value)


@pytest.mark.parametrize(
    ("server", "buildx"),
    [("26.1.5+dfsg1", "0.13.1+ds1"), ("26.0.0", "v0.13.0"), ("27.3.1", "v0.17.1")],
)
def test_good_status_passes(config, server, buildx):
    check_requirements(EngineStatus(server, buildx, True), config)


def test_project_minimums_accept_the_locked_engine():
    # The engine lock/engine.lock.json installs must satisfy hpsforge.toml's own minimums.
    from hpsforge.locks.debian import DebianLock, engine_lock_path

    engine = load_config(PROJECT_CONFIG).engine
    versions = {p.name: p.version for p in DebianLock.read(engine_lock_path()).packages}
    check_requirements(EngineStatus(versions["docker.io"], versions["docker-buildx"], True), engine)


def test_old_server(config):
    message = _message(EngineStatus("25.0.3", "0.13.1", True), config)
    assert "engine 25.0.3 is older than 26.0" in message
    assert "buildx" not in message
    assert "containerd" not in message


def test_missing_buildx(config):
    message = _message(EngineStatus("26.1.5", "", True), config)
    assert "buildx plugin is missing" in message
    assert "docker-buildx" in message
    assert "older" not in message


def test_old_buildx(config):
    message = _message(EngineStatus("26.1.5", "v0.12.1", True), config)
    assert "buildx v0.12.1 is older than 0.13" in message


def test_no_containerd_store(config):
    message = _message(EngineStatus("26.1.5", "0.13.1", False), config)
    assert "not in the containerd store" in message
    assert "containerd-snapshotter" in message
    assert "/etc/docker/daemon.json" in message


def test_all_problems_listed(config):
    message = _message(EngineStatus("20.10.0", "", False), config)
    assert message.count("\n  - ") == 3
    assert "engine 20.10.0 is older" in message
    assert "buildx plugin is missing" in message
    assert "containerd store" in message


def test_status_str():
    assert str(EngineStatus("26.1.5", "0.13.1", True)) == (
        "Docker engine 26.1.5, buildx 0.13.1, containerd image store"
    )


def test_equal_versions_of_different_length(config):
    check_requirements(EngineStatus("26", "0.13", True), config)


@pytest.mark.parametrize(("debian", "uid", "reason"), [(False, 0, "not Debian"), (True, 1000, "not root")])
def test_no_engine_on_a_host_we_may_not_change_gives_instructions(config, monkeypatch, debian, uid, reason):
    from hpsforge.images import engine

    monkeypatch.setattr(engine, "probe", lambda: None)  # no daemon answers
    monkeypatch.setattr(engine, "_is_debian", lambda: debian)
    monkeypatch.setattr(engine.os, "geteuid", lambda: uid)
    with pytest.raises(HpsforgeError) as refused:
        engine.ensure(config)
    message = str(refused.value)
    assert reason in message
    assert "install Docker Engine >= 26" in message and "containerd-snapshotter" in message


def test_an_engine_hpsforge_starts_gets_the_containerd_store_and_a_bounded_build_cache(tmp_path):
    from hpsforge.images.engine import write_daemon_config

    path = tmp_path / "etc" / "docker" / "daemon.json"
    write_daemon_config(load_config().engine, path)
    assert json.loads(path.read_text()) == {
        "features": {"containerd-snapshotter": True},
        "builder": {"gc": {"enabled": True, "defaultKeepStorage": "10GB"}},
    }


def test_the_daemon_config_keeps_the_users_own_settings(tmp_path):
    from hpsforge.images.engine import write_daemon_config

    path = tmp_path / "daemon.json"
    own = {"data-root": "/srv/docker", "builder": {"gc": {"enabled": False}}, "features": {"other": True}}
    path.write_text(json.dumps(own))
    write_daemon_config(load_config().engine, path)
    assert json.loads(path.read_text()) == {**own, "features": {"other": True, "containerd-snapshotter": True}}
    before = path.stat().st_mtime_ns
    write_daemon_config(load_config().engine, path)
    assert path.stat().st_mtime_ns == before  # nothing to change: not rewritten


def test_a_daemon_config_that_is_not_json_is_named(tmp_path):
    from hpsforge.images.engine import write_daemon_config

    path = tmp_path / "daemon.json"
    path.write_text("{ nope")
    with pytest.raises(HpsforgeError) as refused:
        write_daemon_config(load_config().engine, path)
    assert str(path) in str(refused.value) and "not valid JSON" in str(refused.value)


def test_a_malformed_build_cache_size_is_refused():
    from pydantic import ValidationError

    from hpsforge.core.config import EngineConfig

    fields = load_config().engine.model_dump()
    with pytest.raises(ValidationError) as refused:
        EngineConfig.model_validate({**fields, "build_cache_keep": "lots"})
    assert "build_cache_keep" in str(refused.value)
