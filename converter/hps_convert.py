#!/usr/bin/env python3
"""Convert one Paddle inference model for one engine, in the converter image (no network).

    hps_convert.py ENGINE MODEL_DIR PROGRAM PARAMS OUT_DIR

onnxruntime: paddle2onnx writes model.onnx (its exit code is not trusted: it exits 0 having written
nothing, or invalid ONNX), then `fix_scalar_concats` repairs the invalid Concats it writes for
PP-OCRv4 rec and the text-line classifier, and onnx.checker plus OpenVINO's reader prove the file
loads. openvino: OpenVINO's converter reads the Paddle program directly and writes IR in f32
(model.xml + model.bin). Generated names come from a per-process counter: one conversion per process.

Every failure exits 2 with one line on stderr saying which model, engine and check failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ONNX_OPSET = 14  # supported by ONNX Runtime and OpenVINO; recorded in lock/conversions.json
ONNX_FILE = "model.onnx"
OPENVINO_FILES = ("model.xml", "model.bin")


class ConversionError(Exception):
    """The converter failed, or wrote a file that does not load."""


def fix_scalar_concats(model: Any) -> int:
    """Reshape every 0-D input of a Concat to shape [1]; the number of inputs reshaped.

    paddle2onnx writes Concat(axis=0) over 0-D scalars (shape pieces feeding a Reshape): ONNX
    requires every Concat input to have rank >= 1, and ONNX Runtime and OpenVINO refuse it ("All
    inputs to Concat must have same rank"). The names of the added nodes derive from the Concat's
    output, so the same input gives the same bytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    scalars = {
        info.name
        for info in [*inferred.value_info, *inferred.input, *inferred.output]
        if info.type.HasField("tensor_type")
        and info.type.tensor_type.HasField("shape")
        and len(info.type.tensor_type.shape.dim) == 0
    }
    scalars |= {tensor.name for tensor in graph.initializer if len(tensor.dims) == 0}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and len(attribute.t.dims) == 0:
                    scalars.add(node.output[0])
    shape_name = "hps_fix_scalar_concat_shape"
    fixed, nodes = 0, []
    for node in graph.node:
        if node.op_type == "Concat":
            for index, name in enumerate(node.input):
                if name not in scalars:
                    continue
                reshaped = f"{node.output[0]}_hps_input{index}_1d"
                nodes.append(helper.make_node("Reshape", [name, shape_name], [reshaped], name=f"{reshaped}_reshape"))
                node.input[index] = reshaped
                fixed += 1
        nodes.append(node)
    if fixed:
        graph.initializer.append(numpy_helper.from_array(_int64_vector([1]), shape_name))
        del graph.node[:]
        graph.node.extend(nodes)
    assert TensorProto and onnx  # imported for their side effects on the protobuf registry
    return fixed


def _int64_vector(values: list[int]) -> Any:
    import numpy

    return numpy.array(values, dtype=numpy.int64)


def check_onnx(path: Path) -> Any:
    """The ONNX model at `path`, proven to load: a file with a graph that onnx.checker accepts."""
    import onnx

    if not path.is_file() or path.stat().st_size == 0:
        raise ConversionError(f"{path.name} was not written (paddle2onnx exits 0 when it fails)")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # onnx raises several kinds: each means the file is unusable
        raise ConversionError(f"{path.name} is not valid ONNX: {str(error).splitlines()[0]}") from None
    if not model.graph.node:
        raise ConversionError(f"{path.name} has an empty graph")
    return model


def to_onnx(model_dir: Path, program: str, params: str, out_dir: Path) -> None:
    import onnx
    import openvino

    with tempfile.TemporaryDirectory(prefix="paddle2onnx-") as scratch:  # paddle2onnx leaves files in its cwd
        written = Path(scratch) / ONNX_FILE
        command = [
            "paddle2onnx",
            "--model_dir",
            str(model_dir),
            "--model_filename",
            program,
            "--params_filename",
            params,
            "--save_file",
            str(written),
            "--opset_version",
            str(ONNX_OPSET),
            "--enable_onnx_checker",
            "True",
        ]
        result = subprocess.run(command, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0 or not written.is_file() or written.stat().st_size == 0:
            tail = " | ".join(result.stdout.strip().splitlines()[-3:])
            raise ConversionError(f"paddle2onnx wrote no model (exit {result.returncode}): {tail}")
        model = onnx.load(str(written))
        fixed = fix_scalar_concats(model)
        if fixed:
            print(f"hps_convert: reshaped {fixed} scalar Concat input(s) to [1]", flush=True)
            onnx.save(model, str(written))
        check_onnx(written)
        try:
            openvino.Core().read_model(str(written))  # a second reader: what ONNX Runtime refuses, it refuses
        except Exception as error:
            raise ConversionError(f"{ONNX_FILE} does not load: {str(error).splitlines()[0]}") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(written, out_dir / ONNX_FILE)


def to_openvino(model_dir: Path, program: str, params: str, out_dir: Path) -> None:
    import openvino

    with tempfile.TemporaryDirectory(prefix="openvino-") as scratch:
        # OpenVINO finds the parameters beside the program by its stem: give both one stem.
        source = Path(scratch) / "model"
        source.mkdir()
        shutil.copyfile(model_dir / program, source / "inference.pdmodel")
        shutil.copyfile(model_dir / params, source / "inference.pdiparams")
        try:
            model = openvino.convert_model(str(source / "inference.pdmodel"))
        except Exception as error:
            raise ConversionError(f"OpenVINO cannot convert {program}: {str(error).splitlines()[0]}") from None
        written = Path(scratch) / OPENVINO_FILES[0]
        openvino.save_model(model, str(written), compress_to_fp16=False)
        openvino.Core().read_model(str(written))
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in OPENVINO_FILES:
            shutil.copyfile(Path(scratch) / name, out_dir / name)


CONVERTERS = {"onnxruntime": to_onnx, "openvino": to_openvino}


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[0] not in CONVERTERS:
        print(f"usage: hps_convert.py {{{','.join(CONVERTERS)}}} MODEL_DIR PROGRAM PARAMS OUT_DIR", file=sys.stderr)
        return 2
    engine, model_dir, program, params, out_dir = argv
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    try:
        CONVERTERS[engine](Path(model_dir), program, params, Path(out_dir))
    except ConversionError as error:
        print(f"hps_convert: {engine}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
