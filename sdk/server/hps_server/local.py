"""A server bundle's JSON models run in this process, without Triton: the same model.py work a
served request does (decode, validate, the pipeline, the envelope), called directly.

    models = LocalModels(Path("/opt/hps/server"))       # every model in MODELS that is a JsonModel
    envelope = models.call("ocr", b'{"file": "..."}')   # the response envelope's bytes

Used by the serving benchmark (in-process throughput, and the Flask baseline) and by tools that
check goldens in-process. Ensembles and tensor models (no JSON in, JSON out) are not served here.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from hps_server.models import JsonModel

MODELS_FILE = "MODELS"


def declared_models(root: Path) -> list[str]:
    """The models a bundle serves (its MODELS file, else every folder of its repository)."""
    listed = root / MODELS_FILE
    if listed.is_file():
        return [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(path.parent.name for path in (root / "model_repo").glob("*/config.pbtxt"))


def load_model(root: Path, name: str, version: str = "1") -> JsonModel:
    """Import <root>/model_repo/<name>/<version>/model.py and initialize its model as Triton would."""
    path = root / "model_repo" / name / version / "model.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model.py for model {name!r}")
    spec = importlib.util.spec_from_file_location(f"hps_local_model_{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    if not isinstance(model, JsonModel):
        raise TypeError(f"{path}: {name} is not a JsonModel (only JSON endpoints run in-process)")
    model.initialize({"model_repository": str(path.parent.parent), "model_name": name,
                      "model_version": version, "model_instance_kind": "CPU", "model_instance_device_id": "0",
                      "model_config": json.dumps({"name": name})})
    return model


class LocalModels:
    """Every JSON model of a bundle, loaded once; `call` answers one document as the server would."""

    def __init__(self, root: Path, names: list[str] | None = None):
        os.environ.setdefault("HPS_SERVER_ROOT", str(root))
        self.root = root
        self.models = {name: load_model(root, name) for name in (names or declared_models(root))}

    def call(self, model: str, document: bytes) -> bytes:
        return self.models[model].answer([document])[0]

    def call_batch(self, model: str, documents: list[bytes]) -> list[bytes]:
        return self.models[model].answer(documents)

    def send(self, model: str, request: dict) -> dict:
        """A golden-case sender: request dict in, envelope dict out."""
        return json.loads(self.call(model, json.dumps(request, ensure_ascii=False).encode("utf-8")))

    def close(self) -> None:
        for model in self.models.values():
            model.finalize()
