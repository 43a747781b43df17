"""Run inside the runtime image by `nox -s new-pipeline`: load a Paddle inference model with real
Paddle and print its inputs and outputs (name, dtype, shape) as one JSON line after MARKER.

    python3 probe_model.py MODEL_FILE PARAMS_FILE

Names are the predictor's (what the server feeds and fetches); shapes are the program's (-1: any
size); each output's dtype is the one a run on zeros gives. A model Paddle cannot load exits 3 with
Paddle's reason after MARKER.
"""

import json
import sys
import traceback

MARKER = "hpsforge-probe:"
DTYPES = {
    "FLOAT32": "float32",
    "FLOAT64": "float64",
    "FLOAT16": "float16",
    "INT64": "int64",
    "INT32": "int32",
    "INT16": "int16",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}


def _dtype(value):
    """'float32' from paddle.float32, VarType.FP32 or PaddleDType.FLOAT32."""
    text = str(value).rsplit(".", 1)[-1].upper()
    text = {"FP32": "FLOAT32", "FP64": "FLOAT64", "FP16": "FLOAT16"}.get(text, text)
    return DTYPES.get(text, text.lower())


def _program_shapes(model_file, feed_names):
    """(input shapes by name, output shapes in order) from the saved program."""
    import paddle

    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    prefix = model_file.rsplit(".", 1)[0]
    program, feeds, fetches = paddle.static.load_inference_model(prefix, executor)
    block = program.global_block()
    if model_file.endswith(".json"):  # PIR: the feeds are pd_op.data ops
        inputs = {op.attrs()["name"]: list(op.result(0).shape) for op in block.ops if op.name() == "pd_op.data"}
    else:
        inputs = {name: list(block.var(name).shape) for name in feeds}
    return {name: inputs.get(name) for name in feed_names}, [list(value.shape) for value in fetches]


def main():
    model_file, params_file = sys.argv[1], sys.argv[2]
    import numpy as np
    from paddle import inference

    try:
        config = inference.Config(model_file, params_file)
        config.disable_gpu()
        config.switch_ir_optim(False)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        input_names, output_names = predictor.get_input_names(), predictor.get_output_names()
        input_shapes, output_shapes = _program_shapes(model_file, input_names)
    except Exception as error:  # Paddle's own reason is what the user needs
        traceback.print_exc()
        print(MARKER + json.dumps({"error": f"{type(error).__name__}: {error}".strip()[-1500:]}), flush=True)
        return 3
    inputs = []
    for name in input_names:
        handle = predictor.get_input_handle(name)
        shape = input_shapes[name] or [-1]
        dtype = _dtype(handle.type())
        inputs.append({"name": name, "dtype": dtype, "shape": shape})
        # One sample: a batch of 1, and 8 wherever another dimension takes any size.
        concrete = [1 if i == 0 and size < 0 else (8 if size < 0 else size) for i, size in enumerate(shape)]
        handle.reshape(concrete)
        handle.copy_from_cpu(np.zeros(concrete, dtype=dtype))
    try:
        predictor.run()
    except Exception as error:
        traceback.print_exc()
        print(MARKER + json.dumps({"error": f"a run on zeros failed: {type(error).__name__}: {error}"[-1500:]}))
        return 3
    outputs = []
    for index, name in enumerate(output_names):
        array = predictor.get_output_handle(name).copy_to_cpu()
        shape = output_shapes[index] if index < len(output_shapes) else [-1] * array.ndim
        outputs.append({"name": name, "dtype": str(array.dtype), "shape": shape})
    print(MARKER + json.dumps({"inputs": inputs, "outputs": outputs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
