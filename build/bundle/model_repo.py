"""A pipeline's Triton model repository, with one config per device made from one source each.

pipelines/<Name>/server/model_repo/<model>/config.pbtxt is written without instance_group; the
bundle gets it three times: configs/cpu.pbtxt and configs/gpu.pbtxt (selected by tritonserver's
--model-config-name) and config.pbtxt (= cpu, for a plain `tritonserver` run). Batching and
everything else stay identical across devices because they come from the one source. The
instance_group line written here (count 1) is the one server.sh's hps_server.launch rewrites at
start with the instance count chosen from the container's CPUs.

A config is read as Triton reads it: protobuf's text format into Triton's ModelConfig message
(tritonclient's copy of model_config.proto), so a misspelt field or value stops the bundle with
its file, line and column. The device configs are still written as text (the source, its
comments and layout kept, plus one line): their bytes go into the images.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import ModelConfig, ModelInstanceGroup

from hpsforge.core.errors import HpsforgeError, UsageError

DEVICES = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
ENSEMBLE_PLATFORM = "ensemble"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*~", "*.orig", "*.rej", "*.swp")
# The field a parse error's column falls in: the last `field:` or `field {`/`field [` before it.
_FIELD = re.compile(r"([A-Za-z_]\w*)\s*(?::|(?=[{\[]))")
_LOCATION = re.compile(r"^\d+:\d+ : ")


def _field_at(text: str, line: int, column: int) -> str | None:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    fields = _FIELD.findall(lines[line - 1][: max(column - 1, 0)])
    return fields[-1] if fields else None


def parse_config(text: str, where: str) -> ModelConfig:
    """`text` as Triton's ModelConfig; a UsageError names `where`, the line, column and field."""
    try:
        return text_format.Parse(text, ModelConfig())
    except text_format.ParseError as error:
        line, column = error.GetLine(), error.GetColumn()
        detail = _LOCATION.sub("", str(error))
        if line is None or column is None:
            raise UsageError(
                f"{where}: not a Triton model config: {detail}",
                hint="see Triton's model_config.proto for the fields and their values",
            ) from None
        field = _field_at(text, line, column)
        named = f" (field {field})" if field else ""
        raise UsageError(
            f"{where}:{line}:{column}: not a Triton model config{named}: {detail}",
            hint="see Triton's model_config.proto for the fields and their values",
        ) from None


def _read(source: Path) -> tuple[str, ModelConfig]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HpsforgeError(f"{source}: cannot be read ({error})") from None
    return text, parse_config(text, str(source))


def read_config(source: Path) -> ModelConfig:
    """A model's config.pbtxt as Triton reads it."""
    return _read(source)[1]


def is_ensemble(config: ModelConfig) -> bool:
    """An ensemble runs where its steps run: no instances (or processes) of its own."""
    platform: str = config.platform  # ModelConfig is untyped (tritonclient has no stubs)
    return platform == ENSEMBLE_PLATFORM


def device_config(source: Path, device: str) -> str:
    """The config.pbtxt text of one model for one device."""
    text, config = _read(source)
    model = source.parent.name
    if config.instance_group:
        raise HpsforgeError(f"{source}: leave instance_group out; it is written per device (cpu, gpu)")
    if config.name and config.name != model:
        raise HpsforgeError(f'{source}: name "{config.name}" differs from its folder {model!r}')
    if is_ensemble(config):
        return text
    if config.backend != "python":
        raise HpsforgeError(f'{source}: only python-backend models and ensembles are supported (backend: "python")')
    if not list(source.parent.glob("*/model.py")):
        raise HpsforgeError(f"{source}: no <version>/model.py next to it")
    written = (
        text.rstrip() + f"\n\n# Written by hpsforge for the {device} device (server.sh sets the count at start).\n"
        f"instance_group [{{ count: 1, kind: {DEVICES[device]} }}]\n"
    )
    # Triton reads these bytes in the image: checked here to be the source plus that one group.
    expected = ModelConfig()
    expected.CopyFrom(config)
    expected.instance_group.append(ModelInstanceGroup(count=1, kind=ModelInstanceGroup.Kind.Value(DEVICES[device])))
    if parse_config(written, f"{source} (its {device} config)") != expected:
        raise HpsforgeError(f"{source}: its {device} config does not read as the source plus one instance group")
    return written


def models_in(source_repo: Path) -> list[Path]:
    models = sorted(path.parent for path in source_repo.glob("*/config.pbtxt"))
    if not models:
        raise HpsforgeError(f"{source_repo}: no model folders (<model>/config.pbtxt)")
    return models


def stage(source_repo: Path, destination: Path) -> list[str]:
    """Write the repository with per-device configs to `destination`; the model names."""
    names = []
    for model in models_in(source_repo):
        target = destination / model.name
        shutil.copytree(model, target, ignore=IGNORED)
        configs = {device: device_config(model / "config.pbtxt", device) for device in DEVICES}
        (target / "configs").mkdir()
        for device, text in configs.items():
            (target / "configs" / f"{device}.pbtxt").write_text(text, encoding="utf-8")
        (target / "config.pbtxt").write_text(configs["cpu"], encoding="utf-8")
        names.append(model.name)
    return names
