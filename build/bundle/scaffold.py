"""`nox -s new-pipeline`'s pure parts: the name and kind checks, finding the model in a folder, and
every file of a new pipelines/<Name>/ rendered from the model's signature (read from the model by
real Paddle, images/new_pipeline.py) and the templates in scaffold/.

The files are written to a hidden folder beside the pipelines and renamed into place at the end,
so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hpsforge.core.config import Model, Sha256Hex
from hpsforge.core.errors import (
    ModelUnloadableError,
    NoModelError,
    PipelineExistsError,
    PipelineNameError,
    UnknownKindError,
)
from hpsforge.core.files import sha256_file
from hpsforge.core.pipelines import image_slug
from hpsforge.core.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "scaffold"
KINDS = ("tensor", "classification")
Kind = Literal["tensor", "classification"]
ARTIFACT = "model"  # the one model artifact of a new pipeline: models/model/ in the server bundle
SEED = 20261206
# Golden values within this of the recorded ones (absolute), or this fraction of the largest value.
ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE = 1e-4, 1e-5
# A pipeline's name becomes its folder, a Python identifier's prefix, the Triton model name
# image_slug(name) (a directory of the model repository and a segment of /v2/models/<name>/infer:
# no "/", "%", "?", "#", space or dot), a Docker repository component and a Kubernetes object name
# (an RFC 1123 label: lower-case letters, digits and "-", at most 63 with the suffixes added).
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*")
NAME_MAX = 40

DType = Literal["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


class TensorSpec(Model):
    """One input or output of a model as Paddle reports it; -1 in `shape` takes any size."""

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[int]


class ModelSignature(Model):
    """What the probe read from the model (scaffold/probe_model.py's JSON)."""

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)


class ModelFiles(Model):
    """The model found in a folder: its program and its parameters, hashed."""

    folder: Path
    format: Literal["pir", "program"]  # inference.json (Paddle 3's PIR) or *.pdmodel (ProgramDesc)
    model_file: str
    params_file: str
    sha256: dict[str, Sha256Hex]
    sizes: dict[str, int]


def check_kind(kind: str) -> Kind:
    if kind == "tensor":
        return "tensor"
    if kind == "classification":
        return "classification"
    raise UnknownKindError(
        f"--kind {kind!r} is not a kind of pipeline new-pipeline writes; kinds: {', '.join(KINDS)}",
        hint="`--kind tensor` serves any model (named tensors in and out)",
    )


def check_name(name: str, pipelines_dir: Path) -> None:
    """Refuse a name the pipeline's folder, Triton model, image or Kubernetes objects cannot take,
    or one in use (also as another spelling of the same image name)."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > NAME_MAX:
        raise PipelineNameError(
            f"{name!r} cannot name a pipeline: it must start with a letter and hold only letters, digits and "
            f"single underscores, at most {NAME_MAX} characters. It names the folder pipelines/<name>/, and in "
            "lower case with '-' for '_' the Triton model (a model repository directory and the /v2/models/<name> "
            "URL segment), the image and the Kubernetes objects, so '/', '.', '-', spaces and the like are refused",
            hint="e.g. `nox -s new-pipeline -- my_model --model DIR`",
        )
    if (pipelines_dir / name).exists():
        raise PipelineExistsError(
            f"pipelines/{name}/ exists already: new-pipeline never writes over a pipeline",
            hint="choose another name, or remove that folder first",
        )
    if pipelines_dir.is_dir():
        for other in sorted(pipelines_dir.iterdir()):
            if not other.name.startswith(".") and image_slug(other.name) == image_slug(name):
                raise PipelineExistsError(
                    f"pipelines/{other.name}/ exists already and has the same Triton model and image name "
                    f"{image_slug(name)!r} as {name!r}",
                    hint="choose a name that differs in more than case",
                )


def find_model(folder: Path) -> ModelFiles:
    """The Paddle inference model in `folder`: inference.json + .pdiparams (PIR), else one *.pdmodel
    + .pdiparams (the older ProgramDesc format)."""
    if not folder.is_dir():
        raise NoModelError(f"--model {folder}: not a folder", hint="name the folder paddle.jit.save wrote into")
    programs = sorted(folder.glob("*.json")) + sorted(folder.glob("*.pdmodel"))
    paired = [path for path in programs if path.with_suffix(".pdiparams").is_file()]
    if not paired:
        seen = ", ".join(sorted(path.name for path in folder.iterdir())[:12]) or "nothing"
        raise NoModelError(
            f"--model {folder}: no Paddle inference model there (a MODEL.json or MODEL.pdmodel beside "
            f"MODEL.pdiparams, as paddle.jit.save writes them); it holds {seen}",
            hint="export the model with paddle.jit.save(layer, 'DIR/inference', input_spec=...)",
        )
    if len(paired) > 1 and not any(path.name in ("inference.json", "inference.pdmodel") for path in paired):
        raise NoModelError(
            f"--model {folder}: {len(paired)} models there ({', '.join(path.name for path in paired)}); "
            "new-pipeline serves one",
            hint="give a folder with one model (or name it inference.json / inference.pdmodel)",
        )
    chosen = next((path for path in paired if path.stem == "inference"), paired[0])
    params = chosen.with_suffix(".pdiparams")
    files = [chosen, params]
    return ModelFiles(
        folder=folder.resolve(),
        format="pir" if chosen.suffix == ".json" else "program",
        model_file=chosen.name,
        params_file=params.name,
        sha256={path.name: sha256_file(path) for path in files},
        sizes={path.name: path.stat().st_size for path in files},
    )


# -- the signature and the kinds --------------------------------------------------------------


def parse_signature(answer: dict[str, Any]) -> ModelSignature:
    if "error" in answer:
        raise ModelUnloadableError(
            f"Paddle cannot load the model: {answer['error']}",
            hint="check that DIR holds the files paddle.jit.save wrote, from a Paddle 2.x/3.x export",
        )
    return ModelSignature.model_validate(answer)


def sample_shape(shape: list[int]) -> list[int]:
    """A concrete shape for one sample: a batch of 1; 224 for the height and width of an NCHW
    input; 8 wherever else any size is taken (the probe concretises shapes the same way)."""
    concrete = []
    for index, size in enumerate(shape):
        if size >= 0:
            concrete.append(size)
        elif index == 0:
            concrete.append(1)
        else:
            concrete.append(224 if len(shape) == 4 and index >= 2 else 8)
    return concrete


class Classes(Model):
    """What a classification pipeline needs of the model: one NCHW input and one [N, classes] output."""

    height: int
    width: int
    classes: int


def classification_shape(signature: ModelSignature) -> Classes:
    """The model as an image classifier, or ModelUnloadableError saying why it is not one."""
    inputs, outputs = signature.inputs, signature.outputs
    problems = []
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, -1):
        problems.append(f"it takes {_listed(inputs)}, not one image batch [N, 3, H, W]")
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[1] < 1:
        problems.append(f"it gives {_listed(outputs)}, not one score batch [N, classes]")
    if problems:
        raise ModelUnloadableError(
            "--kind classification cannot serve this model: " + "; ".join(problems),
            hint="serve it with `--kind tensor` (named tensors in and out)",
        )
    _, _, height, width = sample_shape(inputs[0].shape)
    return Classes(height=height, width=width, classes=outputs[0].shape[1])


def _listed(specs: list[TensorSpec]) -> str:
    return ", ".join(f"{spec.name} {spec.dtype}{spec.shape}" for spec in specs)


def seeded_tensor(spec: TensorSpec, rng: random.Random) -> Any:
    """A nested list of the sample shape: floats in [-1, 1) to 4 places, small ints, or bools."""

    def fill(shape: list[int]) -> Any:
        if not shape:
            if spec.dtype.startswith("float"):
                return round(rng.uniform(-1, 1), 4)
            if spec.dtype == "bool":
                return rng.random() < 0.5
            return rng.randrange(10)
        return [fill(shape[1:]) for _ in range(shape[0])]

    return fill(sample_shape(spec.shape))


def seeded_png(width: int, height: int, seed: int = SEED) -> bytes:
    """An RGB PNG of seeded noise (zlib and struct only: the same bytes everywhere)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def seeded_request(kind: Kind, signature: ModelSignature) -> dict[str, Any]:
    """The golden request of a new pipeline, from the seed (images by reference: file:seeded.png)."""
    if kind == "classification":
        return {"image": "file:seeded.png", "topk": min(5, classification_shape(signature).classes)}
    rng = random.Random(SEED)
    return {"inputs": {spec.name: seeded_tensor(spec, rng) for spec in signature.inputs}}


# -- TOML ---------------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A TOML value of strings, numbers, booleans, lists and inline tables (what these files hold)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no TOML form here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(key)} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"{type(value).__name__} has no TOML form here")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def toml_table(values: dict[str, Any]) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in values.items())


# -- the files ----------------------------------------------------------------------------------


def settings_of(kind: Kind, model: ModelFiles, signature: ModelSignature) -> dict[str, Any]:
    """The pipeline's [settings]: the model's files and what the kind's server code needs."""
    common = {"model": ARTIFACT, "model_file": model.model_file, "params_file": model.params_file}
    if kind == "tensor":
        return {
            **common,
            "inputs": [spec.model_dump() for spec in signature.inputs],
            "outputs": [spec.model_dump() for spec in signature.outputs],
        }
    shape = classification_shape(signature)
    return {
        **common,
        "labels": [str(index) for index in range(shape.classes)],
        "preprocess": "resize_crop",
        "input_size": [shape.height, shape.width],
        "resize_short": max(shape.height, shape.width) * 256 // 224,
        "channels": "rgb",
        "scale": 1 / 255,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "softmax": False,
        "topk": min(5, shape.classes),
        "visualize": False,
    }


def pipeline_toml(name: str, kind: Kind, model: ModelFiles, signature: ModelSignature) -> str:
    what = {"tensor": "named tensors in and out", "classification": "image classification"}[kind]
    source = {"local": str(model.folder), "sizes": dict(sorted(model.sizes.items()))}
    settings_note = {
        "tensor": "# The model's tensors as Paddle reports them (-1: any size); requests must match them.",
        "classification": "# How images are fed to the model (ImageNet defaults: check them against how it was\n"
        "# trained) and the class names by output index (labels, or labels_file in the model's folder).",
    }[kind]
    return (
        f"# Written by `nox -s new-pipeline -- {name} --model {model.folder} --kind {kind}`.\n"
        f"description = {toml_value(f'{name}: a Paddle Inference model served with {what}')}\n\n"
        "# The model's files, each locked by its size and sha256. They were copied into the content store;\n"
        "# a machine whose store lacks them takes them from the folder (or an input archive) and checks them.\n"
        "[[models]]\n"
        f'name = "{ARTIFACT}"\n'
        f"source = {toml_value(source)}\n"
        "[models.files]\n"
        + toml_table(dict(sorted(model.sha256.items())))
        + f"\n{settings_note}\n[settings]\n"
        + toml_table(settings_of(kind, model, signature))
    )


def config_pbtxt(slug: str, kind: Kind) -> str:
    why = {
        "tensor": "# One JSON request per predictor run (requests may differ in shape); the dynamic batch only\n"
        "# gathers them into one execution.\n",
        "classification": "# The images of a dynamic batch are classified in one predictor run.\n",
    }[kind]
    return (
        why + f'name: "{slug}"\n'
        'backend: "python"\n'
        "max_batch_size: 8\n"
        "dynamic_batching { }\n"
        'input [{ name: "input", data_type: TYPE_STRING, dims: [1] }]\n'
        'output [{ name: "output", data_type: TYPE_STRING, dims: [1] }]\n'
    )


def _template(kind: Kind, relative: str, slug: str) -> bytes:
    return (TEMPLATES / kind / relative).read_text(encoding="utf-8").replace("__MODEL__", slug).encode()


def _tree(source: Path, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}/{path.relative_to(source).as_posix()}": path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def library(kind: Kind, pipelines_dir: Path) -> dict[str, bytes]:
    """The kind's server/lib/ package: the tensor template, or the shipped classifier's own code."""
    if kind == "tensor":
        return _tree(TEMPLATES / "tensor" / "lib", "server/lib")
    shipped = pipelines_dir / "image_classification" / "server" / "lib"
    if not shipped.is_dir():
        shipped = PROJECT_ROOT / "pipelines" / "image_classification" / "server" / "lib"
    return _tree(shipped, "server/lib")


def render(
    name: str, kind: Kind, model: ModelFiles, signature: ModelSignature, pipelines_dir: Path, goldens: str
) -> dict[str, bytes]:
    """Every file of pipelines/<name>/ (relative path -> bytes)."""
    slug = image_slug(name)
    files = {
        "pipeline.toml": pipeline_toml(name, kind, model, signature).encode(),
        f"server/model_repo/{slug}/config.pbtxt": config_pbtxt(slug, kind).encode(),
        f"server/model_repo/{slug}/1/model.py": _template(kind, "model.py", slug),
        "client/client.py": _template(kind, "client.py", slug),
        "goldens/cases.toml": goldens.encode(),
        **library(kind, pipelines_dir),
    }
    if kind == "classification":
        shape = classification_shape(signature)
        files["goldens/seeded.png"] = seeded_png(shape.width, shape.height)
    return files


# -- goldens ------------------------------------------------------------------------------------


def _flat(value: Any) -> list[float]:
    return [x for item in value for x in _flat(item)] if isinstance(value, list) else [float(value)]


def _tolerance(values: Any) -> float:
    largest = max((abs(x) for x in _flat(values)), default=0.0)
    return max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * largest)


def recorded_checks(kind: Kind, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """exact / close / length checks of a recorded answer's `result`."""
    exact: dict[str, Any] = {}
    close: dict[str, Any] = {}
    length: dict[str, int] = {}
    if kind == "tensor":
        outputs = result["outputs"]
        length["outputs"] = len(outputs)
        for index, output in enumerate(outputs):
            exact[f"outputs.{index}.name"] = output["name"]
            exact[f"outputs.{index}.shape"] = output["shape"]
            close[f"outputs.{index}.data"] = [output["data"], _tolerance(output["data"])]
    else:
        categories = result["categories"]
        length["categories"] = len(categories)
        for index, category in enumerate(categories):
            exact[f"categories.{index}.id"] = category["id"]
            exact[f"categories.{index}.name"] = category["name"]
            close[f"categories.{index}.score"] = [category["score"], ABSOLUTE_TOLERANCE]
    return {"exact": exact, "close": close, "length": length}


def goldens_toml(name: str, kind: Kind, request: dict[str, Any], recorded: dict[str, Any] | None) -> str:
    """goldens/cases.toml (format: bundle/goldens.py): the seeded request, checked against the
    recorded answer when there is one, and a request the endpoint must refuse."""
    slug = image_slug(name)
    image_field = "image" if kind == "classification" else None
    required = "image" if kind == "classification" else "inputs"
    lines = [
        f"# Golden requests of {name} (format: build/bundle/goldens.py), written by `nox -s new-pipeline`.",
        (
            "# The seeded case's values were recorded from the model's own answer in the pipeline image."
            if recorded is not None
            else "# Nothing recorded yet: the seeded case only has to be answered without an error. Record\n"
            "# the model's answer with `nox -s new-pipeline -- NAME --model DIR --record-goldens`."
        ),
        "",
        "[conformance]",
        toml_table(
            {"model": slug, "valid_case": "seeded", **({"image_field": image_field} if image_field else {})}
            | {"required_field": required}
        ).rstrip("\n"),
        "",
        "[bench]",
        'golden = "seeded"',
        'large = "seeded"',
        "",
        "[[cases]]",
        'name = "seeded"',
        f'model = "{slug}"',
        f"description = {toml_value(f'a request made from seed {SEED}')}",
        f"request = {toml_value(request)}",
    ]
    if recorded is not None:
        for check, values in recorded_checks(kind, recorded).items():
            if values:
                lines.append(f"{check} = {toml_value(values)}")
    refused = (
        {"request": {"image": "bm90IGFuIGltYWdl"}, "contains": "image", "why": "bytes that are not an image"}
        if kind == "classification"
        else {"request": {"inputs": {}}, "contains": "missing", "why": "no input tensors"}
    )
    lines += [
        "",
        "[[cases]]",
        'name = "refused"',
        f'model = "{slug}"',
        f"description = {toml_value(str(refused['why']) + ': a 422 saying why')}",
        f"request = {toml_value(refused['request'])}",
        "error_code = 422",
        f"error_contains = {toml_value(refused['contains'])}",
    ]
    return "\n".join(lines) + "\n"


# -- writing ------------------------------------------------------------------------------------


@contextmanager
def staged(pipelines_dir: Path, name: str) -> Iterator[Path]:
    """A hidden folder beside pipelines/<name>/ to write into; removed unless `publish` moved it."""
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=pipelines_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for relative, data in sorted(files.items()):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    folder.chmod(0o755)


def publish(staging: Path, destination: Path) -> None:
    """Move the finished folder into place in one rename (refused if something appeared there)."""
    if destination.exists():
        raise PipelineExistsError(f"{destination} appeared while new-pipeline ran: nothing was written")
    staging.rename(destination)
