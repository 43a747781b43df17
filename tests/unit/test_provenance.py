"""prove/provenance.py: the in-toto statement of each image, from the committed locks and record."""

from __future__ import annotations

import json

import pytest

from hpsforge.core.files import sha256_file
from hpsforge.core.project import Project
from hpsforge.images import graph
from hpsforge.locks import conversions, debian, images_lock, pip_locks
from hpsforge.prove import provenance


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No wheelhouse of this machine's cache changes which wheel digests a statement names."""
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def project():
    return Project.load()


@pytest.fixture(scope="module")
def recorded():
    return images_lock.ImagesLock.read().images


def _statement(project, recorded, role):
    walk = graph.BuildGraph.of(project, ["cpu"])
    node = walk.nodes[role]
    return provenance.statement(
        project,
        provenance.node_of(node, recorded[role]),
        recorded[role],
        provenance.statement_parents(walk, node, recorded),
        "0123456789abcdef0123456789abcdef01234567",
    )


def test_the_same_locks_give_the_same_bytes(project, recorded, tmp_path):
    first = provenance.write(_statement(project, recorded, "runtime-cpu"), tmp_path / "a")
    second = provenance.write(_statement(project, recorded, "runtime-cpu"), tmp_path / "b")
    assert first.name == "runtime-cpu.intoto.json"
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"  # canonical


def test_a_runtime_statement_names_its_digest_lock_wheels_and_parents(project, recorded):
    statement = _statement(project, recorded, "runtime-cpu")
    body = json.loads(statement.canonical_bytes())
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement.digest == recorded["runtime-cpu"].digest
    names = {d.name: d.digest for d in statement.predicate.build_definition.resolved_dependencies}
    assert names["image:base"] == {"sha256": recorded["base"].digest.removeprefix("sha256:")}
    assert names["image:rc"] == {"sha256": recorded["rc"].digest.removeprefix("sha256:")}
    assert names["lock:lock/requirements/cpu.txt"] == {"sha256": sha256_file(pip_locks.lock_path("cpu"))}
    assert any(name.startswith("pypi:paddlepaddle==") for name in names)
    assert names["revision"] == {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}
    external = body["predicate"]["buildDefinition"]["externalParameters"]
    assert external == {
        "role": "runtime-cpu",
        "kind": "runtime",
        "target": "cpu",
        "inputSha256": recorded["runtime-cpu"].input_sha256,
    }
    assert body["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-01-01T00:00:00Z"
    assert body["predicate"]["buildDefinition"]["internalParameters"]["declaration:cpu"] == (
        pip_locks.declaration_sha256(project.config, project.pipelines, "cpu")
    )


def test_the_base_statement_lists_every_deb_with_its_sha256(project, recorded):
    statement = _statement(project, recorded, "base")
    listed = {d.name: d.digest.get("sha256") for d in statement.predicate.build_definition.resolved_dependencies}
    lock = debian.DebianLock.read(debian.base_lock_path())
    assert len(lock.packages) > 50
    for package in lock.packages:
        assert listed[f"deb:{package.name}@{package.version}:{package.architecture}"] == package.sha256


def test_a_pipeline_statement_lists_its_model_files(project, recorded):
    statement = _statement(project, recorded, "pipeline-ocr-cpu")
    names = [d.name for d in statement.predicate.build_definition.resolved_dependencies]
    models = [name for name in names if name.startswith("model:")]
    assert models and all(name.startswith("model:OCR/") for name in models)
    assert "image:runtime-cpu" in names
    # its converted files by sha256 (lock/conversions.json), not the converter image that made them
    digests = {d.name: d.digest.get("sha256") for d in statement.predicate.build_definition.resolved_dependencies}
    locked = conversions.ConversionsLock.read().entry("OCR", "text_recognition", "openvino").files
    assert digests["converted:OCR/text_recognition/openvino/model.bin"] == locked["model.bin"].sha256
    assert "image:converter" not in names


def test_the_current_locks_show_no_drift(project, recorded):
    for role in ("base", "rc", "runtime-cpu", "pipeline-ocr-cpu"):
        assert provenance.drift(project, _statement(project, recorded, role), recorded) == []


def _with_dependency(statement, index, **changes):
    body = json.loads(statement.canonical_bytes())
    dependencies = body["predicate"]["buildDefinition"]["resolvedDependencies"]
    if index is None:
        dependencies.append(changes)
    else:
        dependencies[index].update(changes)
    return provenance.Statement.parse(json.dumps(body).encode(), "test")


def test_drift_names_the_input_and_both_hashes(project, recorded):
    statement = _statement(project, recorded, "base")
    entry = statement.predicate.build_definition.resolved_dependencies[5]
    drifted = _with_dependency(statement, 5, digest={"sha256": "f" * 64})
    (problem,) = provenance.drift(project, drifted, recorded)
    assert entry.name in problem and "f" * 64 in problem and entry.digest["sha256"] in problem


def test_an_input_no_lock_pins_is_named(project, recorded):
    statement = _with_dependency(
        _statement(project, recorded, "runtime-cpu"), None, name="pypi:evil==1.0", digest={"sha256": "e" * 64}
    )
    (problem,) = provenance.drift(project, statement, recorded)
    assert "pypi:evil==1.0" in problem and "no current lock pins" in problem


def test_a_parent_other_than_the_recorded_one_is_named(project, recorded):
    statement = _statement(project, recorded, "pipeline-ocr-cpu")
    moved = {**recorded, "runtime-cpu": recorded["runtime-cpu"].model_copy(update={"digest": "sha256:" + "a" * 64})}
    (problem,) = provenance.drift(project, statement, moved)
    assert "image:runtime-cpu" in problem and "a" * 64 in problem


def test_a_malformed_statement_is_a_provenance_mismatch():
    from hpsforge.core.errors import ExitCode, ProvenanceMismatchError

    with pytest.raises(ProvenanceMismatchError, match="not an hpsforge provenance statement") as caught:
        provenance.Statement.parse(b'{"_type": "https://in-toto.io/Statement/v0.1"}', "the attestation")
    assert caught.value.exit_code == ExitCode.PROVENANCE_MISMATCH
