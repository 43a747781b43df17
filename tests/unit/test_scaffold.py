"""new-pipeline's pure parts: names and kinds refused, the model found in a folder, the pipeline's
files rendered so that hpsforge's own loaders accept them, and local model sources locked file by file."""

from __future__ import annotations

import tomllib
import zlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpsforge.bundle import goldens, scaffold
from hpsforge.core.errors import (
    ExitCode,
    HashMismatchError,
    InputUnavailableError,
    ModelUnloadableError,
    NoModelError,
    PipelineExistsError,
    PipelineNameError,
    UnknownKindError,
)
from hpsforge.core.files import sha256_bytes
from hpsforge.core.pipelines import ModelArtifact, ModelSource, Pipeline, load_pipeline
from hpsforge.inputs import model_files
from hpsforge.inputs.store import ContentStore

TENSOR = scaffold.ModelSignature.model_validate(
    {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": [-1, 4]},
            {"name": "ids", "dtype": "int64", "shape": [-1, -1]},
        ],
        "outputs": [{"name": "softmax_0.tmp_0", "dtype": "float32", "shape": [-1, 3]}],
    }
)
IMAGES = scaffold.ModelSignature.model_validate(
    {
        "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 3, 32, 48]}],
        "outputs": [{"name": "scores", "dtype": "float32", "shape": [-1, 4]}],
    }
)


def _model_folder(path: Path, program: str = "inference.json") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / program).write_bytes(b"program bytes")
    (path / "inference.pdiparams").write_bytes(b"parameter bytes")
    return path


@pytest.mark.parametrize("name", ["my_model", "OCR2", "a", "resnet50_v2"])
def test_good_names_pass(name, tmp_path):
    scaffold.check_name(name, tmp_path)


@pytest.mark.parametrize(
    "name", ["bad-name", "two__underscores", "_lead", "trail_", "9lives", "a.b", "a/b", "with space", "é", "x" * 41]
)
def test_names_a_pipeline_cannot_take_are_refused(name, tmp_path):
    with pytest.raises(PipelineNameError, match="cannot name a pipeline") as caught:
        scaffold.check_name(name, tmp_path)
    assert caught.value.exit_code is ExitCode.USAGE


def test_a_name_in_use_is_refused_also_in_another_case(tmp_path):
    (tmp_path / "my_model").mkdir()
    with pytest.raises(PipelineExistsError, match="exists already"):
        scaffold.check_name("my_model", tmp_path)
    with pytest.raises(PipelineExistsError, match="same Triton model and image name 'my-model'"):
        scaffold.check_name("My_Model", tmp_path)


def test_unknown_kinds_are_refused():
    assert scaffold.check_kind("tensor") == "tensor"
    with pytest.raises(UnknownKindError, match="'ocr' is not a kind.*tensor, classification, detection, ocr-like"):
        scaffold.check_kind("ocr")


def test_both_model_formats_are_found_and_hashed(tmp_path):
    pir = scaffold.find_model(_model_folder(tmp_path / "pir"))
    assert (pir.format, pir.model_file, pir.params_file) == ("pir", "inference.json", "inference.pdiparams")
    assert pir.sha256["inference.json"] == sha256_bytes(b"program bytes")
    assert pir.sizes == {"inference.json": 13, "inference.pdiparams": 15}
    old = scaffold.find_model(_model_folder(tmp_path / "old", "inference.pdmodel"))
    assert (old.format, old.model_file) == ("program", "inference.pdmodel")


def test_a_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    (tmp_path / "inference.json").write_bytes(b"{}")  # no parameters beside it
    with pytest.raises(NoModelError, match="no Paddle inference model there.*inference.json, weights.bin"):
        scaffold.find_model(tmp_path)
    with pytest.raises(NoModelError, match="not a folder"):
        scaffold.find_model(tmp_path / "missing")


def test_two_models_without_an_inference_one_are_refused(tmp_path):
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.pdmodel").write_bytes(b"p")
        (tmp_path / f"{stem}.pdiparams").write_bytes(b"w")
    with pytest.raises(NoModelError, match="2 models there"):
        scaffold.find_model(tmp_path)


def test_a_probe_error_is_a_model_unloadable_error():
    with pytest.raises(ModelUnloadableError, match="Paddle cannot load the model: RuntimeError: bad") as caught:
        scaffold.parse_signature({"error": "RuntimeError: bad"})
    assert caught.value.exit_code is ExitCode.MODEL_UNLOADABLE


def test_classification_needs_one_image_input_and_one_score_output():
    assert scaffold.classification_shape(IMAGES) == scaffold.Classes(height=32, width=48, classes=4)
    with pytest.raises(ModelUnloadableError, match="(?s)not one image batch.*--kind tensor"):
        scaffold.classification_shape(TENSOR)


def test_seeded_requests_are_the_same_every_time_and_have_the_sample_shape():
    first = scaffold.seeded_request("tensor", TENSOR)
    assert first == scaffold.seeded_request("tensor", TENSOR)
    assert len(first["inputs"]["x"]) == 1 and len(first["inputs"]["x"][0]) == 4
    assert len(first["inputs"]["ids"][0]) == 8 and all(isinstance(v, int) for v in first["inputs"]["ids"][0])
    assert scaffold.sample_shape([-1, 3, -1, -1]) == [1, 3, 224, 224]


def test_the_seeded_png_is_a_png_of_the_size_asked():
    png = scaffold.seeded_png(48, 32)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == scaffold.seeded_png(48, 32)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (48, 32)
    idat = png.index(b"IDAT")
    length = int.from_bytes(png[idat - 4 : idat], "big")
    assert len(zlib.decompress(png[idat + 4 : idat + 4 + length])) == 32 * (1 + 48 * 3)


def test_toml_values_round_trip():
    values = {"a": 'quote " and \\ and é', "b": [1, 2.5, -1e-07, True], "c": {"dotted.key": [[0.1]]}, "d": {}}
    assert tomllib.loads(scaffold.toml_table(values)) == values
    with pytest.raises(ValueError, match="no TOML form"):
        scaffold.toml_value(float("nan"))


@pytest.mark.parametrize("kind", ["tensor", "classification"])
def test_rendered_pipelines_load_with_hpsforges_own_models(kind, tmp_path):
    signature = TENSOR if kind == "tensor" else IMAGES
    model = scaffold.find_model(_model_folder(tmp_path / "model"))
    request = scaffold.seeded_request(kind, signature)
    recorded = (
        {"outputs": [{"name": "softmax_0.tmp_0", "dtype": "float32", "shape": [1, 3], "data": [[0.2, 0.3, 0.5]]}]}
        if kind == "tensor"
        else {"categories": [{"id": 2, "name": "2", "score": 0.9}, {"id": 0, "name": "0", "score": 0.05}]}
    )
    files = scaffold.render(
        "my_model", kind, model, signature, tmp_path, scaffold.goldens_toml("my_model", kind, request, recorded)
    )
    folder = tmp_path / "pipelines" / "my_model"
    scaffold.write_files(folder, files)
    name, pipeline = load_pipeline(folder)
    assert isinstance(pipeline, Pipeline) and name == "my_model"
    (artifact,) = pipeline.models
    assert artifact.source.local == str(model.folder) and artifact.files == model.sha256
    assert (folder / "server/model_repo/my-model/config.pbtxt").read_text().count('name: "my-model"') == 1
    assert "__MODEL__" not in (folder / "client/client.py").read_text()
    assert 'MODEL = "my-model"' in (folder / "client/client.py").read_text()
    golden = goldens.load_file(folder)
    assert golden.conformance.model == "my-model" and golden.valid_case.request == request
    seeded = golden.valid_case
    # The recorded answer passes its own checks; another answer does not.
    assert goldens.problems(seeded, {"errorCode": 0, "result": recorded}) == []
    other = {"errorCode": 0, "result": {"outputs": [], "categories": []}}
    assert goldens.problems(seeded, other)
    if kind == "tensor":
        assert pipeline.settings["inputs"][1] == {"name": "ids", "dtype": "int64", "shape": [-1, -1]}
        assert (folder / "server/lib/tensor_pipeline/pipeline.py").is_file()
    else:
        assert pipeline.settings["input_size"] == [32, 48] and pipeline.settings["labels"] == ["0", "1", "2", "3"]
        assert (folder / "goldens/seeded.png").read_bytes() == scaffold.seeded_png(48, 32)


def test_goldens_without_a_recording_only_ask_for_an_answer(tmp_path):
    text = scaffold.goldens_toml("m", "tensor", scaffold.seeded_request("tensor", TENSOR), None)
    (tmp_path / "goldens").mkdir()
    (tmp_path / "goldens" / "cases.toml").write_text(text)
    seeded, refused = goldens.load(tmp_path)
    assert (seeded.exact, seeded.close, seeded.length) == ({}, {}, {})
    assert refused.error_code == 422 and "--record-goldens" in text


def test_staging_leaves_nothing_on_failure_and_publish_never_overwrites(tmp_path):
    with pytest.raises(RuntimeError), scaffold.staged(tmp_path, "m") as staging:
        scaffold.write_files(staging, {"pipeline.toml": b"x"})
        raise RuntimeError("a later step failed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "m").mkdir()
    with scaffold.staged(tmp_path, "m") as staging, pytest.raises(PipelineExistsError, match="appeared"):
        scaffold.publish(staging, tmp_path / "m")
    assert [path.name for path in tmp_path.iterdir()] == ["m"]


def test_a_local_source_needs_an_absolute_folder_and_one_size_per_file():
    with pytest.raises(ValidationError, match="not an absolute folder"):
        ModelSource(local="relative/dir", sizes={"a": 1})
    with pytest.raises(ValidationError, match="exactly one of"):
        ModelSource.model_validate({"local": "/models"})
    with pytest.raises(ValidationError, match="one size per file"):
        ModelArtifact(name="m", source=ModelSource(local="/models", sizes={"a.json": 1}), files={"b.json": "0" * 64})


def _local_artifact(folder: Path, data: bytes) -> ModelArtifact:
    return ModelArtifact(
        name="model",
        source=ModelSource(local=str(folder), sizes={"inference.json": len(data)}),
        files={"inference.json": sha256_bytes(data)},
    )


def test_local_model_files_come_from_the_store_then_the_folder_and_are_checked(tmp_path):
    folder = _model_folder(tmp_path / "model")
    store = ContentStore(tmp_path / "cache")
    artifact = _local_artifact(folder, b"program bytes")
    # Not in the store yet: taken from the folder (file://), checked, stored.
    model_files.extract("p", [artifact], tmp_path / "out", store)
    assert (tmp_path / "out/model/inference.json").read_bytes() == b"program bytes"
    assert store.path(sha256_bytes(b"program bytes")).is_file()
    # In the store: the folder is no longer needed.
    (folder / "inference.json").unlink()
    model_files.extract("p", [artifact], tmp_path / "again", store)
    assert model_files.verify_pipelines({"p": Pipeline(description="d", models=[artifact])}, store) == 1


def test_a_local_model_file_that_changed_is_refused(tmp_path):
    folder = _model_folder(tmp_path / "model")
    store = ContentStore(tmp_path / "cache")
    artifact = _local_artifact(folder, b"the bytes that were locked")
    with pytest.raises((HashMismatchError, InputUnavailableError), match="inference.json"):
        model_files.extract("p", [artifact], tmp_path / "out", store)
    assert not (tmp_path / "out/model/inference.json").exists()
