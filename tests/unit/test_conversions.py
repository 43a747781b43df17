"""lock/conversions.json's model and the placing of converted files (inputs/conversions.py): taken
from the store only when their bytes match the lock, converted bytes that differ are refused naming
pipeline, model, engine, file and both hashes, and nothing unverified is placed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hpsforge.core.errors import ConvertedMismatchError, HashMismatchError, InputUnavailableError, StaleLockError
from hpsforge.core.files import sha256_bytes
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import conversions as placing
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import conversions
from tests.support import scripts

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


# converter/hps_convert.py's graph pass, on a tiny graph built with onnx.helper: a Reshape whose
# shape is Concat(axis=0) over a 1-D initializer, a 0-D Constant and a 0-D initializer (what
# paddle2onnx writes for PP-OCRv4 rec and the text-line classifier).
hps_convert = scripts.load(PROJECT_ROOT / "converter" / "hps_convert.py", "hps_convert")


def _scalar_concat_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2])
    nodes = [
        helper.make_node("Constant", [], ["three"], value=numpy_helper.from_array(numpy.array(3, dtype=numpy.int64))),
        helper.make_node("Concat", ["one", "three", "two"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    initializers = [
        numpy_helper.from_array(numpy.array([1], dtype=numpy.int64), "one"),
        numpy_helper.from_array(numpy.array(2, dtype=numpy.int64), "two"),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", hps_convert.ONNX_OPSET)])


def test_the_graph_fix_makes_a_concat_of_scalars_valid_onnx():
    model = _scalar_concat_model()
    with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError), match="same rank"):
        onnx.checker.check_model(model, full_check=True)
    assert hps_convert.fix_scalar_concats(model) == 2
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node] == ["Constant", "Reshape", "Reshape", "Concat", "Reshape"]
    concat = model.graph.node[3]
    assert list(concat.input) == ["one", "shape_hps_input1_1d", "shape_hps_input2_1d"]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    assert [dim.dim_value for dim in inferred.output[0].type.tensor_type.shape.dim] == [1, 3, 2]


def test_the_graph_fix_is_deterministic_and_leaves_valid_graphs_alone(tmp_path):
    first, second = _scalar_concat_model(), _scalar_concat_model()
    hps_convert.fix_scalar_concats(first)
    hps_convert.fix_scalar_concats(second)
    assert first.SerializeToString() == second.SerializeToString()
    assert hps_convert.fix_scalar_concats(first) == 0  # already fixed: nothing more to do
    onnx.save(first, str(tmp_path / "model.onnx"))
    assert hps_convert.check_onnx(tmp_path / "model.onnx").graph.node


def test_an_empty_or_missing_onnx_file_is_refused_whatever_paddle2onnx_said(tmp_path):
    with pytest.raises(hps_convert.ConversionError, match="was not written"):
        hps_convert.check_onnx(tmp_path / "model.onnx")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(hps_convert.ConversionError, match="was not written"):
        hps_convert.check_onnx(tmp_path / "model.onnx")
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(hps_convert.ConversionError, match="not valid ONNX"):
        hps_convert.check_onnx(tmp_path / "model.onnx")
