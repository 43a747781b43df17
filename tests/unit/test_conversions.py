"""lock/conversions.json's model and the placing of converted files (inputs/conversions.py): taken
from the store only when their bytes match the lock, converted bytes that differ are refused naming
pipeline, model, engine, file and both hashes, and nothing unverified is placed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpsforge.core.errors import ConvertedMismatchError, HashMismatchError, InputUnavailableError, StaleLockError
from hpsforge.core.files import sha256_bytes
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import conversions as placing
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import conversions

ONNX = b"converted onnx bytes"


def _model(project, pipeline="OCR", name="textline_orientation"):
    return next(model for model in project.pipelines[pipeline].models if model.name == name)


def _lock_for(project, files: dict[str, bytes]) -> conversions.ConversionsLock:
    artifact = _model(project)
    entry = conversions.EngineConversion(
        converter="paddle2onnx",
        versions={"paddle2onnx": "2.1.0"},
        options=conversions.CONVERTERS["onnxruntime"][2],
        inputs=conversions.paddle_inputs(artifact),
        convert_lock_sha256="a" * 64,
        script_sha256="b" * 64,
        files={
            name: conversions.ConvertedFile(sha256=sha256_bytes(data), size=len(data)) for name, data in files.items()
        },
    )
    return conversions.ConversionsLock(pipelines={"OCR": {artifact.name: {"onnxruntime": entry}}})


def _only_onnxruntime(project):
    return _model(project).model_copy(update={"engines": ["paddle", "onnxruntime"]})


def test_the_committed_lock_reads_and_round_trips_canonically():
    path = PROJECT_ROOT / "lock" / "conversions.json"
    lock = conversions.ConversionsLock.read(path)
    assert lock.canonical_text() == path.read_text(encoding="utf-8")
    entry = lock.entry("OCR", "text_recognition", "onnxruntime")
    assert set(entry.files) == {"model.onnx"} and entry.versions["paddle2onnx"] == "2.1.0"
    assert set(lock.entry("OCR", "text_recognition", "openvino").files) == {"model.xml", "model.bin"}
    assert lock.entry("OCR", "text_detection", "openvino").options["compress_to_fp16"] is False


def test_a_missing_or_malformed_lock_names_the_file_and_the_freeze(tmp_path):
    with pytest.raises(StaleLockError, match="(?s)lock file missing.*nox -s freeze -- conversions"):
        conversions.ConversionsLock.read(tmp_path / "conversions.json")
    (tmp_path / "conversions.json").write_text('{"pipelines": {"OCR": {"m": {"onnxruntime": {"converter": 1}}}}}')
    with pytest.raises(StaleLockError, match="(?s)malformed lock.*nox -s freeze -- conversions"):
        conversions.ConversionsLock.read(tmp_path / "conversions.json")
    with pytest.raises(StaleLockError, match="OCR/x has no openvino conversion locked"):
        conversions.ConversionsLock().entry("OCR", "x", "openvino")


def test_the_lock_and_the_converter_script_agree_on_the_opset():
    script = (PROJECT_ROOT / "converter" / "hps_convert.py").read_text(encoding="utf-8")
    assert re.search(r"^ONNX_OPSET = (\d+)", script, flags=re.M)[1] == str(conversions.ONNX_OPSET)


def test_stored_files_are_placed_and_a_tampered_one_is_refused(project, tmp_path):
    store = ContentStore(tmp_path / "store")
    stored = tmp_path / "model.onnx"
    stored.write_bytes(ONNX)
    store.add(stored, sha256_bytes(ONNX), "test")
    lock, artifact = _lock_for(project, {"model.onnx": ONNX}), _only_onnxruntime(project)
    placing.place("OCR", [artifact], tmp_path / "models", store, None, lock=lock)
    assert (tmp_path / "models" / artifact.name / "onnxruntime" / "model.onnx").read_bytes() == ONNX
    store.path(sha256_bytes(ONNX)).write_bytes(b"tampered")
    with pytest.raises(HashMismatchError, match="OCR/textline_orientation onnxruntime model.onnx"):
        placing.place("OCR", [artifact], tmp_path / "again", store, None, lock=lock)
    assert not (tmp_path / "again").exists()


def test_missing_files_without_a_converter_say_how_to_make_them(project, tmp_path):
    lock = _lock_for(project, {"model.onnx": ONNX})
    with pytest.raises(InputUnavailableError, match="not in the content store") as error:
        placing.place("OCR", [_only_onnxruntime(project)], tmp_path, ContentStore(tmp_path / "s"), None, lock=lock)
    assert "nox -s images" in str(error.value)


def test_converted_bytes_that_differ_from_the_lock_are_refused_and_nothing_is_stored(project, tmp_path):
    store = ContentStore(tmp_path / "store")
    calls = []

    def converter(job: placing.Conversion, model_dir: Path, out: Path) -> None:
        calls.append((job, sorted(path.name for path in model_dir.iterdir())))
        (out / "model.onnx").write_bytes(b"other bytes")

    lock, artifact = _lock_for(project, {"model.onnx": ONNX}), _only_onnxruntime(project)
    (tmp_path / "models" / artifact.name).mkdir(parents=True)
    (tmp_path / "models" / artifact.name / "inference.pdmodel").write_bytes(b"program")
    with pytest.raises(ConvertedMismatchError) as error:
        placing.place("OCR", [artifact], tmp_path / "models", store, converter, lock=lock)
    message = str(error.value)
    assert "OCR/textline_orientation onnxruntime model.onnx" in message
    assert sha256_bytes(ONNX) in message and sha256_bytes(b"other bytes") in message
    assert "nox -s freeze -- conversions" in message
    assert error.value.exit_code == 5
    assert calls[0][0] == placing.Conversion(
        "OCR", "textline_orientation", "onnxruntime", "inference.pdmodel", "inference.pdiparams"
    )
    assert not (tmp_path / "models" / artifact.name / "onnxruntime").exists()
    assert not store.path(sha256_bytes(b"other bytes")).exists()


def test_fresh_converts_again_even_when_the_store_holds_the_files(project, tmp_path):
    store = ContentStore(tmp_path / "store")
    (tmp_path / "x").write_bytes(ONNX)
    store.add(tmp_path / "x", sha256_bytes(ONNX), "test")
    converted = []

    def converter(job: placing.Conversion, model_dir: Path, out: Path) -> None:
        converted.append(job.engine)
        (out / "model.onnx").write_bytes(ONNX)

    lock, artifact = _lock_for(project, {"model.onnx": ONNX}), _only_onnxruntime(project)
    placing.place("OCR", [artifact], tmp_path / "m", store, converter, lock=lock)
    assert converted == []
    placing.place("OCR", [artifact], tmp_path / "m", store, converter, lock=lock, fresh=True)
    assert converted == ["onnxruntime"]


def test_a_lock_made_from_other_paddle_files_is_stale_at_placing(project, tmp_path):
    lock = _lock_for(project, {"model.onnx": ONNX})
    entry = lock.pipelines["OCR"]["textline_orientation"]["onnxruntime"]
    entry.inputs["inference.pdiparams"] = "c" * 64
    with pytest.raises(StaleLockError, match="made from other Paddle files"):
        placing.place("OCR", [_only_onnxruntime(project)], tmp_path, ContentStore(tmp_path / "s"), None, lock=lock)
