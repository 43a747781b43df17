"""A pipeline's Triton model repository, with one config per device made from one source each.

pipelines/<Name>/server/model_repo/<model>/config.pbtxt is written without instance_group; the
bundle gets it three times: configs/cpu.pbtxt and configs/gpu.pbtxt (selected by tritonserver's
--model-config-name) and config.pbtxt (= cpu, for a plain `tritonserver` run). Batching and
everything else stay identical across devices because they come from the one source. The
instance_group line written here (count 1) is the one server.sh's hps_server.launch rewrites at
start with the instance count chosen from the container's CPUs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from hpsforge.core.errors import HpsforgeError

DEVICES = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
ENSEMBLE = re.compile(r'^\s*platform\s*:\s*"ensemble"', re.MULTILINE)
TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|#[^\n]*|[\[\]{}]|\bname\s*:\s*"([^"]*)"')
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*~", "*.orig", "*.rej", "*.swp")


def _top_level_name(text: str) -> str | None:
    """The model's own `name:` (outside every input/output/... block), if it has one."""
    depth = 0
    for match in TOKENS.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        elif match.group(1) is not None and depth == 0:
            return match.group(1)
    return None


def device_config(source: Path, device: str) -> str:
    """The config.pbtxt text of one model for one device."""
    text = source.read_text(encoding="utf-8")
    model = source.parent.name
    if re.search(r"^\s*instance_group\b", text, re.MULTILINE):
        raise HpsforgeError(f"{source}: leave instance_group out; it is written per device (cpu, gpu)")
    name = _top_level_name(text)
    if name is not None and name != model:
        raise HpsforgeError(f'{source}: name "{name}" differs from its folder {model!r}')
    if ENSEMBLE.search(text):
        return text  # an ensemble runs where its steps run: no instances of its own
    if not re.search(r'^\s*backend\s*:\s*"python"', text, re.MULTILINE):
        raise HpsforgeError(f'{source}: only python-backend models and ensembles are supported (backend: "python")')
    if not list(source.parent.glob("*/model.py")):
        raise HpsforgeError(f"{source}: no <version>/model.py next to it")
    return (text.rstrip() + f"\n\n# Written by hpsforge for the {device} device (server.sh sets the count at start).\n"
            f"instance_group [{{ count: 1, kind: {DEVICES[device]} }}]\n")


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
