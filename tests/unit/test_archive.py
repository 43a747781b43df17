"""Input archive import: every file proven against the index before any enters the store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hpsforge.core.errors import HashMismatchError, InputUnavailableError, UsageError
from hpsforge.core.files import sha256_bytes
from hpsforge.core.pipelines import ModelArtifact, ModelSource, Pipeline
from hpsforge.core.project import Project
from hpsforge.inputs import archive, wheelhouse
from hpsforge.inputs.store import ContentStore
from tests.support.archives import make_archive

FILES = {"alpha_1.0_amd64.deb": b"alpha" * 1000, "beta_2.0_all.deb": b"beta" * 3000, "gamma_3_all.deb": b"g" * 10}


@pytest.fixture
def store(tmp_path, monkeypatch) -> ContentStore:
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    return ContentStore()


def _stored(store: ContentStore) -> list[Path]:
    return [path for path in store.root.rglob("*") if path.is_file()] if store.root.exists() else []


def _rewrite_index(folder: Path, change) -> None:
    index = json.loads((folder / "index.json").read_text())
    change(index)
    (folder / "index.json").write_text(json.dumps(index))


def test_import_proves_every_file_then_seeds_the_store(tmp_path, store):
    shas = make_archive(tmp_path / "archive", FILES)
    wheel = b"a wheel"
    digest = hashlib.sha256(wheel).hexdigest()
    (tmp_path / "archive" / "files" / digest).write_bytes(wheel)
    wheelset = {
        "target": "cpu",
        "lock_sha256": "c" * 64,
        "wheels": [{"filename": "w-1.0-py3-none-any.whl", "sha256": digest, "size": len(wheel)}],
    }
    _rewrite_index(
        tmp_path / "archive",
        lambda index: (
            index["entries"].append(
                {
                    "name": "w-1.0-py3-none-any.whl",
                    "kind": "wheel",
                    "size": len(wheel),
                    "sha256": digest,
                    "locks": ["lock/requirements/cpu.txt"],
                }
            ),
            index.__setitem__("wheelsets", [wheelset]),
        ),
    )
    imported = archive.import_(tmp_path / "archive", store)
    assert len(imported.entries) == 4
    for name, sha in shas.items():
        assert store.verified(sha, name).read_bytes() == FILES[name]
    assert wheelhouse.read_wheelset("c" * 64).wheels[0].sha256 == digest
    again = archive.import_(tmp_path / "archive", store)  # a second import finds everything there
    assert len(again.entries) == 4


def test_a_missing_file_is_named_and_nothing_is_imported(tmp_path, store):
    shas = make_archive(tmp_path / "archive", FILES)
    (tmp_path / "archive" / "files" / shas["beta_2.0_all.deb"]).unlink()
    with pytest.raises(InputUnavailableError) as refused:
        archive.import_(tmp_path / "archive", store)
    assert "beta_2.0_all.deb" in str(refused.value) and "missing" in str(refused.value)
    assert "nothing was imported" in str(refused.value)
    assert _stored(store) == []


def test_a_truncated_file_is_named_and_nothing_is_imported(tmp_path, store):
    shas = make_archive(tmp_path / "archive", FILES)
    victim = tmp_path / "archive" / "files" / shas["alpha_1.0_amd64.deb"]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(InputUnavailableError) as refused:
        archive.import_(tmp_path / "archive", store)
    assert "alpha_1.0_amd64.deb" in str(refused.value) and "has 100 bytes, the index says 5000" in str(refused.value)
    assert _stored(store) == []


def test_an_altered_file_fails_with_its_hashes_and_nothing_is_imported(tmp_path, store):
    shas = make_archive(tmp_path / "archive", FILES)
    victim = tmp_path / "archive" / "files" / shas["gamma_3_all.deb"]
    victim.write_bytes(b"G" * 10)  # same size, other bytes
    with pytest.raises(HashMismatchError) as refused:
        archive.import_(tmp_path / "archive", store)
    message = str(refused.value)
    assert "gamma_3_all.deb" in message and shas["gamma_3_all.deb"] in message
    assert hashlib.sha256(b"G" * 10).hexdigest() in message and "nothing was imported" in message
    assert refused.value.exit_code == 5
    assert _stored(store) == []  # not even the files proven before it


def test_a_foreign_folder_is_not_an_archive(tmp_path, store):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(UsageError, match="is not an hpsforge input archive \\(no index.json\\)"):
        archive.import_(tmp_path / "photos", store)
    (tmp_path / "photos" / "index.json").write_text('{"format": "something-else/2", "entries": []}')
    with pytest.raises(UsageError, match="not a valid hpsforge archive index \\(format"):
        archive.import_(tmp_path / "photos", store)
    assert _stored(store) == []


def test_an_index_naming_a_file_twice_is_refused(tmp_path, store):
    make_archive(tmp_path / "archive", FILES)
    _rewrite_index(
        tmp_path / "archive", lambda index: index["entries"].append({**index["entries"][0], "name": "alpha-again.deb"})
    )
    with pytest.raises(UsageError) as refused:
        archive.import_(tmp_path / "archive", store)
    assert "is listed twice (alpha_1.0_amd64.deb, alpha-again.deb)" in str(refused.value)
    assert _stored(store) == []


def test_a_wheelset_naming_a_wheel_the_archive_lacks_is_refused(tmp_path, store):
    make_archive(tmp_path / "archive", FILES)
    _rewrite_index(
        tmp_path / "archive",
        lambda index: index.__setitem__(
            "wheelsets",
            [
                {
                    "target": "cpu",
                    "lock_sha256": "c" * 64,
                    "wheels": [{"filename": "ghost-1.0-py3-none-any.whl", "sha256": "d" * 64, "size": 1}],
                }
            ],
        ),
    )
    with pytest.raises(UsageError, match="names wheels it does not hold: ghost-1.0-py3-none-any.whl"):
        archive.import_(tmp_path / "archive", store)


def test_export_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="exists and is not empty"):
        archive.export(None, tmp_path / "out", lambda name, lock: pytest.fail("asked for a wheelset"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_import_links_instead_of_copying_and_the_store_refuses_a_file_changed_afterwards(tmp_path, store):
    shas = make_archive(tmp_path / "archive", FILES)
    archive.import_(tmp_path / "archive", store)
    kept = tmp_path / "archive" / "files" / shas["beta_2.0_all.deb"]
    assert store.path(shas["beta_2.0_all.deb"]).samefile(kept)  # one filesystem: no second copy
    kept.write_bytes(b"B" * len(FILES["beta_2.0_all.deb"]))  # the archive altered after the import
    with pytest.raises(HashMismatchError) as refused:
        store.verified(shas["beta_2.0_all.deb"], "beta_2.0_all.deb")
    assert "does not match its lock" in str(refused.value)


def test_an_unknown_target_is_named_with_the_declared_ones(project):
    assert archive.selected_targets(project, None) == sorted(project.config.targets)
    assert archive.selected_targets(project, ["cpu", "cpu"]) == ["cpu"]
    with pytest.raises(UsageError) as refused:
        archive.selected_targets(project, ["cpu", "tpu"])
    assert "unknown target(s) tpu" in str(refused.value) and "cpu, gpu-cu118, gpu-cu12" in str(refused.value)


def test_local_model_files_are_archived_as_model_sources_locked_by_their_pipeline(project, tmp_path, store):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "inference.json").write_bytes(b"program")
    artifact = ModelArtifact(
        name="model",
        source=ModelSource(local=str(folder), sizes={"inference.json": 7}),
        files={"inference.json": sha256_bytes(b"program")},
    )
    mine = Project(project.config, {"mine": Pipeline(description="d", models=[artifact])})
    ((name, kind, path, sha256, declared),) = archive._local_model_inputs(mine, store)
    assert (name, kind, sha256) == ("inference.json", "model-source", sha256_bytes(b"program"))
    assert path == store.path(sha256) and path.read_bytes() == b"program"
    assert declared.parts[-2:] == ("mine", "pipeline.toml")
