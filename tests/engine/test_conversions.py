"""Conversions in the real converter image: the same bytes twice and the bytes lock/conversions.json
names; the graph fix proven by onnx itself; a tampered converted file in the store refused. Uses
the smallest model (the text-line classifier: ~10 s for ONNX, ~3 s for OpenVINO)."""

from __future__ import annotations

import pytest
from python_on_whales import docker

from hpsforge.core.errors import HashMismatchError
from hpsforge.core.files import sha256_file
from hpsforge.images.converter import ImageConverter
from hpsforge.inputs import conversions, model_files
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.conversions import ConversionsLock

PIPELINE, MODEL = "OCR", "textline_orientation"

# A Reshape whose shape is Concat(axis=0) over a 1-D initializer, a 0-D Constant and a 0-D
# initializer: what paddle2onnx writes for PP-OCRv4 rec and the classifier.
GRAPH_FIX = """
import importlib.util, sys
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
spec = importlib.util.spec_from_file_location("hps_convert", "/opt/hps-convert/bin/hps_convert.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2])
nodes = [
    helper.make_node("Constant", [], ["three"], value=numpy_helper.from_array(np.array(3, dtype=np.int64))),
    helper.make_node("Concat", ["one", "three", "two"], ["shape"], axis=0),
    helper.make_node("Reshape", ["x", "shape"], ["y"]),
]
initializers = [numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
                numpy_helper.from_array(np.array(2, dtype=np.int64), "two")]
model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], initializers),
                          opset_imports=[helper.make_opsetid("", 14)])
try:
    onnx.checker.check_model(model, full_check=True)
    sys.exit("the unfixed graph passed onnx.checker")
except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
    assert "must have same rank" in str(error), error
print("fixed", module.fix_scalar_concats(model))
onnx.checker.check_model(model, full_check=True)
print("ops", [node.op_type for node in model.graph.node])
"""


@pytest.fixture(scope="module")
def paddle_model(project, tmp_path_factory):
    """The classifier's verified Paddle files, extracted as staging does."""
    artifact = next(model for model in project.pipelines[PIPELINE].models if model.name == MODEL)
    models = tmp_path_factory.mktemp("models")
    model_files.extract(PIPELINE, [artifact], models)
    return artifact, models


def test_the_graph_fix_makes_scalar_concats_valid_onnx(converter_image):
    output = docker.run(
        converter_image.reference, ["-c", GRAPH_FIX], entrypoint="/opt/hps-convert/bin/python", remove=True
    )
    assert "fixed 2" in output and "ops ['Constant', 'Reshape', 'Reshape', 'Concat', 'Reshape']" in output


def test_converting_twice_writes_the_locked_bytes(config, converter_image, paddle_model, tmp_path):
    artifact, models = paddle_model
    converter = ImageConverter(converter_image, config.base.source_date_epoch)
    lock = ConversionsLock.read()
    for engine in artifact.converted_engines():
        outputs = []
        for run in (1, 2):
            out = tmp_path / f"{engine}-{run}"
            converter(conversions.conversion(PIPELINE, artifact, engine), models / MODEL, out)
            outputs.append({path.name: path.read_bytes() for path in sorted(out.iterdir())})
        assert outputs[0] == outputs[1], f"{engine}: two conversions wrote different bytes"
        locked = lock.entry(PIPELINE, MODEL, engine).files
        assert {name: sha256_file(tmp_path / f"{engine}-1" / name) for name in outputs[0]} == {
            name: file.sha256 for name, file in locked.items()
        }


def test_a_tampered_converted_file_in_the_store_is_refused(config, converter_image, paddle_model, tmp_path):
    artifact, models = paddle_model
    store = ContentStore(tmp_path / "store")  # empty: the first placing converts and stores
    converter = ImageConverter(converter_image, config.base.source_date_epoch)
    only_openvino = artifact.model_copy(update={"engines": ["paddle", "openvino"]})
    conversions.place(PIPELINE, [only_openvino], models, store, converter)
    placed = models / MODEL / "openvino" / "model.xml"
    entry = ConversionsLock.read().entry(PIPELINE, MODEL, "openvino")
    assert sha256_file(placed) == entry.files["model.xml"].sha256
    stored = store.path(entry.files["model.bin"].sha256)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    again = tmp_path / "again"
    (again / MODEL).mkdir(parents=True)
    with pytest.raises(HashMismatchError, match=r"OCR/textline_orientation openvino model\.bin") as error:
        conversions.place(PIPELINE, [only_openvino], again, store, converter)
    assert entry.files["model.bin"].sha256 in str(error.value)
    assert not (again / MODEL / "openvino").exists()


def test_the_converter_has_no_network(converter_image):
    """Conversions run with --network=none: only the loopback interface exists."""
    script = "import socket; print(sorted(name for _, name in socket.if_nameindex()))"
    output = docker.run(
        converter_image.reference,
        ["-c", script],
        entrypoint="/opt/hps-convert/bin/python",
        networks=["none"],
        remove=True,
    )
    assert output.strip() == "['lo']"
