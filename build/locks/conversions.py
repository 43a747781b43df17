"""lock/conversions.json: every model file converted for another engine, per pipeline, model and
engine: the converter and its versions, the options, the Paddle files it read, the converter
environment it ran in (the convert lock's and converter/hps_convert.py's sha256) and the sha256 and
size of each file it wrote. `images` serves only converted bytes this lock names."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from hpsforge.core.config import Model, Sha256Hex
from hpsforge.core.errors import StaleLockError
from hpsforge.core.files import canonical_json, sha256_file
from hpsforge.core.pipelines import Engine, ModelArtifact, Pipeline
from hpsforge.core.settings import settings
from hpsforge.locks import pip_locks, requirements_lock

KIND = "conversions"  # its name in locks/kinds.py
FREEZE = f"nox -s freeze -- {KIND}"
ONNX_OPSET = 14  # converter/hps_convert.py's ONNX_OPSET (a unit test holds them together)

# What each engine's converter is, the packages whose versions decide its bytes, its options and
# the files it writes (the served layout: models/<name>/<engine>/<file>).
CONVERTERS: dict[str, tuple[str, tuple[str, ...], dict[str, object], tuple[str, ...]]] = {
    "onnxruntime": (
        "paddle2onnx",
        ("paddle2onnx", "paddlepaddle", "onnx", "onnx-graphsurgeon"),
        {"opset_version": ONNX_OPSET, "enable_onnx_checker": True, "fix_scalar_concats": True},
        ("model.onnx",),
    ),
    "openvino": (
        "openvino.convert_model",
        ("openvino", "paddlepaddle"),
        {"source": "paddle", "compress_to_fp16": False, "one_conversion_per_process": True},
        ("model.xml", "model.bin"),
    ),
}


def conversions_lock_path() -> Path:
    return settings().lock_dir / "conversions.json"


def converter_script() -> Path:
    return settings().root / "converter" / "hps_convert.py"


class ConvertedFile(Model):
    sha256: Sha256Hex
    size: int = Field(ge=1)


class EngineConversion(Model):
    """One model converted for one engine."""

    converter: str
    versions: dict[str, str]  # package -> version, from the convert lock
    options: dict[str, object]
    inputs: dict[str, Sha256Hex]  # the Paddle files read, by basename
    convert_lock_sha256: Sha256Hex  # lock/requirements/convert.txt
    script_sha256: Sha256Hex  # converter/hps_convert.py
    files: dict[str, ConvertedFile]  # by basename, under models/<name>/<engine>/


class ConversionsLock(Model):
    """lock/conversions.json: pipeline -> model -> engine -> its conversion."""

    pipelines: dict[str, dict[str, dict[str, EngineConversion]]] = {}

    @classmethod
    def read(cls, path: Path | None = None) -> ConversionsLock:
        path = path or conversions_lock_path()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StaleLockError(f"{path}: lock file missing", hint=f"create it with `{FREEZE}`") from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise StaleLockError(
                f"{path}: malformed lock ({where}: {first['msg']})",
                hint=f"restore it from git or rewrite it with `{FREEZE}`",
            ) from None

    def canonical_text(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def entry(self, pipeline: str, model: str, engine: str) -> EngineConversion:
        try:
            return self.pipelines[pipeline][model][engine]
        except KeyError:
            raise StaleLockError(
                f"{conversions_lock_path()}: {pipeline}/{model} has no {engine} conversion locked",
                hint=f"lock it with `{FREEZE}`",
            ) from None

    def problems(self, pipelines: dict[str, Pipeline]) -> list[str]:
        """Why this lock does not fit the declared models and the converter environment (one line each)."""
        stale = f"{conversions_lock_path()} is stale"
        expected = declared(pipelines)
        found: list[str] = []
        environment = converter_environment() if pip_locks.lock_path(pip_locks.CONVERT).exists() else None
        for key, (artifact, engine) in expected.items():
            pipeline, model = key[0], key[1]
            if (locked := self.pipelines.get(pipeline, {}).get(model, {}).get(engine)) is None:
                found.append(f"{stale}: {pipeline}/{model} declares {engine}, which has no conversion locked")
                continue
            if locked.inputs != paddle_inputs(artifact):
                found.append(f"{stale}: {pipeline}/{model}'s Paddle files changed since its {engine} conversion")
            # (a missing convert lock is the convert kind's problem, named once there)
            if environment is not None and (locked.convert_lock_sha256, locked.script_sha256) != environment:
                found.append(
                    f"{stale}: {pipeline}/{model}'s {engine} conversion was made by another converter "
                    "(lock/requirements/convert.txt or converter/hps_convert.py changed)"
                )
            converter, _packages, options, files = CONVERTERS[engine]
            if (locked.converter, locked.options, set(locked.files)) != (converter, options, set(files)):
                found.append(f"{stale}: {pipeline}/{model}'s {engine} conversion has other options or files")
        extra = [
            f"{pipeline}/{model} {engine}"
            for pipeline, models in self.pipelines.items()
            for model, engines in models.items()
            for engine in engines
            if (pipeline, model, engine) not in expected
        ]
        if extra:
            found.append(f"{stale}: it locks conversions no model declares: {', '.join(extra)}")
        return [f"{line}; refresh with `{FREEZE}`" for line in found]


def declared(pipelines: dict[str, Pipeline]) -> dict[tuple[str, str, Engine], tuple[ModelArtifact, Engine]]:
    """(pipeline, model, engine) -> the model and engine, for every converted engine declared."""
    return {
        (name, artifact.name, engine): (artifact, engine)
        for name, pipeline in sorted(pipelines.items())
        for artifact in pipeline.models
        for engine in artifact.converted_engines()
    }


def paddle_inputs(artifact: ModelArtifact) -> dict[str, str]:
    """The Paddle program and parameters a conversion reads: basename -> sha256."""
    model = artifact.paddle_model()
    served = artifact.served_files()
    return {} if model is None else {basename: served[basename][1] for basename in model}


def converter_environment() -> tuple[str, str]:
    """(the convert lock's sha256, the converter script's sha256)."""
    return sha256_file(pip_locks.lock_path(pip_locks.CONVERT)), sha256_file(converter_script())


def converter_versions(engine: str) -> dict[str, str]:
    """The versions, from the convert lock, of the packages that decide `engine`'s converted bytes."""
    pins = requirements_lock.read(pip_locks.lock_path(pip_locks.CONVERT)).by_name()
    return {name: pins[name].version for name in CONVERTERS[engine][1] if name in pins}


def has_conversions(pipelines: dict[str, Pipeline]) -> bool:
    return bool(declared(pipelines))
