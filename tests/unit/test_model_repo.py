"""hpsforge.model_repo: per-device configs made from one config.pbtxt source, and the staged repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

from hpsforge.bundle import model_repo
from hpsforge.core.errors import HpsforgeError, UsageError

PYTHON_CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 8
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
input [{{ name: "input", data_type: TYPE_STRING, dims: [1] }}]
output [{{ name: "output", data_type: TYPE_STRING, dims: [1] }}]
"""

ENSEMBLE_CONFIG = """name: "{name}"
platform: "ensemble"
max_batch_size: 8
input [{{ name: "input", data_type: TYPE_STRING, dims: [1] }}]
output [{{ name: "output", data_type: TYPE_STRING, dims: [1] }}]
ensemble_scheduling {{
  step [{{ model_name: "step", model_version: -1,
          input_map {{ key: "input", value: "input" }}, output_map {{ key: "output", value: "output" }} }}]
}}
"""


def _model(repo: Path, name: str, config: str = PYTHON_CONFIG, *, model_py: bool = True) -> Path:
    folder = repo / name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config.format(name=name), encoding="utf-8")
    if model_py:
        (folder / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n", encoding="utf-8")
    return folder / "config.pbtxt"


def _error(source: Path, device: str = "cpu") -> str:
    with pytest.raises(HpsforgeError) as caught:
        model_repo.device_config(source, device)
    return str(caught.value)


@pytest.mark.parametrize("device, kind", [("cpu", "KIND_CPU"), ("gpu", "KIND_GPU")])
def test_python_model_gets_an_instance_group(tmp_path, device, kind):
    source = _model(tmp_path, "ocr")
    text = model_repo.device_config(source, device)
    original = source.read_text(encoding="utf-8")
    assert text.startswith(original.rstrip())
    assert text.endswith(f"instance_group [{{ count: 1, kind: {kind} }}]\n")
    assert text.count("instance_group") == 1
    assert f"for the {device} device" in text


def test_cpu_and_gpu_configs_differ_only_in_the_instance_group(tmp_path):
    source = _model(tmp_path, "ocr")
    cpu = model_repo.device_config(source, "cpu")
    gpu = model_repo.device_config(source, "gpu")
    assert cpu.replace("KIND_CPU", "KIND_GPU").replace("cpu device", "gpu device") == gpu


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_ensemble_is_unchanged(tmp_path, device):
    source = _model(tmp_path, "pipeline", ENSEMBLE_CONFIG, model_py=False)
    assert model_repo.device_config(source, device) == source.read_text(encoding="utf-8")


def test_source_with_an_instance_group_is_rejected(tmp_path):
    source = _model(tmp_path, "ocr", PYTHON_CONFIG + "instance_group [{{ count: 2, kind: KIND_CPU }}]\n")
    message = _error(source)
    assert str(source) in message and "leave instance_group out" in message


def test_indented_instance_group_is_rejected(tmp_path):
    source = _model(tmp_path, "ocr", PYTHON_CONFIG + "  instance_group [{{ kind: KIND_GPU }}]\n")
    assert "instance_group" in _error(source, "gpu")


def test_ensemble_with_an_instance_group_is_rejected(tmp_path):
    source = _model(tmp_path, "pipeline", ENSEMBLE_CONFIG + "instance_group [{{ kind: KIND_CPU }}]\n", model_py=False)
    assert "leave instance_group out" in _error(source)


def test_name_differing_from_the_folder_is_rejected(tmp_path):
    source = _model(tmp_path, "ocr")
    source.write_text(PYTHON_CONFIG.format(name="ocr-v2"), encoding="utf-8")
    message = _error(source)
    assert str(source) in message
    assert "name \"ocr-v2\" differs from its folder 'ocr'" in message


def test_ensemble_name_differing_from_the_folder_is_rejected(tmp_path):
    source = _model(tmp_path, "pipeline", ENSEMBLE_CONFIG, model_py=False)
    source.write_text(ENSEMBLE_CONFIG.format(name="other"), encoding="utf-8")
    assert "differs from its folder" in _error(source)


def test_config_without_a_name_takes_the_folder_name(tmp_path):
    source = _model(tmp_path, "ocr", PYTHON_CONFIG.replace('name: "{name}"\n', ""))
    assert "KIND_CPU" in model_repo.device_config(source, "cpu")


@pytest.mark.parametrize("backend", ['backend: "onnxruntime"', 'backend: "paddle"', 'platform: "tensorrt_plan"'])
def test_non_python_backend_is_rejected(tmp_path, backend):
    source = _model(tmp_path, "ocr", PYTHON_CONFIG.replace('backend: "python"', backend))
    message = _error(source)
    assert str(source) in message and 'backend: "python"' in message


def test_missing_model_py_is_rejected(tmp_path):
    source = _model(tmp_path, "ocr", model_py=False)
    message = _error(source)
    assert str(source) in message and "no <version>/model.py" in message


def test_model_py_in_any_version_folder_is_enough(tmp_path):
    source = _model(tmp_path, "ocr", model_py=False)
    (source.parent / "3").mkdir()
    (source.parent / "3" / "model.py").write_text("", encoding="utf-8")
    assert "KIND_GPU" in model_repo.device_config(source, "gpu")


def test_models_in_lists_model_folders_sorted(tmp_path):
    _model(tmp_path, "b")
    _model(tmp_path, "a")
    (tmp_path / "notes").mkdir()  # no config.pbtxt: not a model
    assert model_repo.models_in(tmp_path) == [tmp_path / "a", tmp_path / "b"]


def test_models_in_empty_dir(tmp_path):
    with pytest.raises(HpsforgeError) as caught:
        model_repo.models_in(tmp_path)
    assert str(tmp_path) in str(caught.value) and "no model folders" in str(caught.value)


def test_models_in_missing_dir(tmp_path):
    with pytest.raises(HpsforgeError, match="no model folders"):
        model_repo.models_in(tmp_path / "absent")


def _files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_stage_writes_per_device_configs(tmp_path):
    source_repo = tmp_path / "src"
    _model(source_repo, "ocr")
    _model(source_repo, "pipeline", ENSEMBLE_CONFIG, model_py=False)
    (source_repo / "ocr" / "1" / "__pycache__").mkdir()
    (source_repo / "ocr" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (source_repo / "ocr" / "1" / "stray.pyc").write_bytes(b"\0")
    (source_repo / "ocr" / "1" / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    destination = tmp_path / "out" / "model_repo"

    assert model_repo.stage(source_repo, destination) == ["ocr", "pipeline"]

    assert _files(destination) == {
        "ocr/config.pbtxt",
        "ocr/configs/cpu.pbtxt",
        "ocr/configs/gpu.pbtxt",
        "ocr/1/model.py",
        "ocr/1/labels.txt",
        "pipeline/config.pbtxt",
        "pipeline/configs/cpu.pbtxt",
        "pipeline/configs/gpu.pbtxt",
    }
    assert not (destination / "ocr" / "1" / "__pycache__").exists()
    ocr = destination / "ocr"
    assert (ocr / "config.pbtxt").read_text(encoding="utf-8") == model_repo.device_config(
        source_repo / "ocr" / "config.pbtxt", "cpu"
    )
    assert (ocr / "config.pbtxt").read_bytes() == (ocr / "configs" / "cpu.pbtxt").read_bytes()
    assert "KIND_GPU" in (ocr / "configs" / "gpu.pbtxt").read_text(encoding="utf-8")
    assert "KIND_CPU" in (ocr / "configs" / "cpu.pbtxt").read_text(encoding="utf-8")
    assert (ocr / "1" / "model.py").read_bytes() == (source_repo / "ocr" / "1" / "model.py").read_bytes()
    ensemble = source_repo / "pipeline" / "config.pbtxt"
    for name in ("config.pbtxt", "configs/cpu.pbtxt", "configs/gpu.pbtxt"):
        assert (destination / "pipeline" / name).read_bytes() == ensemble.read_bytes()
    # The source is left as it was.
    assert "instance_group" not in (source_repo / "ocr" / "config.pbtxt").read_text(encoding="utf-8")


def test_stage_stops_on_a_bad_model(tmp_path):
    source_repo = tmp_path / "src"
    _model(source_repo, "good")
    _model(source_repo, "bad", model_py=False)
    with pytest.raises(HpsforgeError, match="no <version>/model.py"):
        model_repo.stage(source_repo, tmp_path / "out")


def test_stage_empty_source(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(HpsforgeError, match="no model folders"):
        model_repo.stage(tmp_path / "src", tmp_path / "out")


def test_real_pipelines_stage(tmp_path):
    """Every shipped pipeline's model repository is accepted."""
    pipelines = Path(__file__).resolve().parents[2] / "pipelines"
    for source_repo in sorted(pipelines.glob("*/server/model_repo")):
        names = model_repo.stage(source_repo, tmp_path / source_repo.parents[1].name)
        assert names == [path.name for path in model_repo.models_in(source_repo)]


def test_multiline_input_names_are_not_the_model_name(tmp_path):
    config = (
        'backend: "python"\nmax_batch_size: 8\ninput [\n  {\n    name: "input"\n    data_type: TYPE_STRING\n'
        '    dims: [1]\n  }\n]\noutput [\n  {\n    name: "output"\n    data_type: TYPE_STRING\n    dims: [1]\n'
        "  }\n]\n"
    )
    source = _model(tmp_path, "ocr", config.replace("{", "{{").replace("}", "}}"))
    assert "KIND_CPU" in model_repo.device_config(source, "cpu")


# --- read as Triton reads it: protobuf's text format into its ModelConfig message -----------------


@pytest.mark.parametrize(
    "config, line_column, says",
    [
        (
            PYTHON_CONFIG.replace("max_batch_size: 8", "max_batch_size: eight"),
            "3:17",
            "(field max_batch_size): 'max_batch_size: eight': Couldn't parse integer: eight",
        ),
        (
            PYTHON_CONFIG + "bogus_field: 3\n",
            "7:1",
            'Message type "inference.ModelConfig" has no field named "bogus_field"',
        ),
        (
            PYTHON_CONFIG.replace("max_queue_delay_microseconds", "max_queue_delay_microsecond"),
            "4:20",
            '(field dynamic_batching): Message type "inference.ModelDynamicBatching" has no field named '
            '"max_queue_delay_microsecond"',
        ),
        (
            PYTHON_CONFIG.replace('"input", data_type: TYPE_STRING', '"input", data_type: TYPE_STRNG'),
            "5:36",
            "(field data_type): 'input [{ name: \"input\", data_type: TYPE_STRNG, dims: [1] }]': Enum type "
            '"inference.DataType" has no value named TYPE_STRNG',
        ),
        (PYTHON_CONFIG.replace("dims: [1] }}]\noutput", "dims: [1] }}\noutput"), "6:1", 'Expected ","'),
        (PYTHON_CONFIG + 'name: "again"\n', "7:7", 'should not have multiple "name" fields'),
    ],
)
def test_a_malformed_config_names_the_file_line_column_and_field(tmp_path, config, line_column, says):
    source = _model(tmp_path, "ocr", config)
    with pytest.raises(UsageError) as caught:
        model_repo.device_config(source, "cpu")
    message = str(caught.value)
    assert message.startswith(f"{source}:{line_column}: not a Triton model config")
    assert says in message and caught.value.exit_code == 2 and "model_config.proto" in message
    with pytest.raises(UsageError, match=re.escape(f"{source}:{line_column}:")):
        model_repo.read_config(source)


def test_the_config_reads_as_a_model_config(tmp_path):
    config = model_repo.read_config(_model(tmp_path, "ocr"))
    assert (config.name, config.backend, config.max_batch_size) == ("ocr", "python", 8)
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(tensor.name, list(tensor.dims)) for tensor in config.input] == [("input", [1])]
    assert model_repo.is_ensemble(model_repo.read_config(_model(tmp_path, "pipeline", ENSEMBLE_CONFIG, model_py=False)))


@pytest.mark.parametrize("device, kind", [("cpu", "KIND_CPU"), ("gpu", "KIND_GPU")])
def test_the_written_config_is_the_source_plus_one_instance_group(tmp_path, device, kind):
    source = _model(tmp_path, "ocr")
    written = model_repo.parse_config(model_repo.device_config(source, device), "written")
    (group,) = written.instance_group
    assert (group.count, ModelInstanceGroup.Kind.Name(group.kind)) == (1, kind)
    written.ClearField("instance_group")
    assert written == model_repo.read_config(source)


def test_a_name_only_in_a_comment_or_an_input_is_not_the_model_name(tmp_path):
    config = '# name: "other"\n' + PYTHON_CONFIG.replace('name: "{name}"\n', "")
    assert "KIND_CPU" in model_repo.device_config(_model(tmp_path, "ocr", config), "cpu")


def test_an_instance_group_in_a_comment_is_not_one(tmp_path):
    source = _model(tmp_path, "ocr", "# instance_group [{{ kind: KIND_GPU }}]\n" + PYTHON_CONFIG)
    assert model_repo.device_config(source, "cpu").count("instance_group [") == 2  # the comment's and ours
