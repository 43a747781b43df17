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
import typing
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field

from hpsforge.core.config import Model, Sha256Hex
from hpsforge.core.errors import (
    DictionaryError,
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
KINDS = ("tensor", "classification", "detection", "ocr-like")
Kind = Literal["tensor", "classification", "detection", "ocr-like"]
IMAGE_KINDS = ("classification", "detection", "ocr-like")  # an image in: a seeded PNG is the golden request
DICTIONARY = "dictionary"  # ocr-like: the character dictionary's artifact, models/dictionary/ in the bundle
ARTIFACT = "model"  # the one model artifact of a new pipeline: models/model/ in the server bundle
SEED = 20261206
# Golden values within this of the recorded ones (absolute), or this fraction of the largest value.
ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE = 1e-4, 1e-5
BOX_TOLERANCE = 2e-3
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
    for known in typing.get_args(Kind):
        if kind == known:
            return cast(Kind, known)
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


class Detector(Model):
    """What a detection pipeline needs of a PaddleDetection export: its tensors by role, its input size."""

    height: int
    width: int
    image: str
    im_shape: str
    scale_factor: str
    boxes: str
    counts: str


DETECTION_INPUTS = ("image", "im_shape", "scale_factor")
DETECTION_DEFAULT_SIZE = 640  # an input of any height and width is fed at this size (PP-YOLOE's)


def detection_shape(signature: ModelSignature) -> Detector:
    """The model as a PaddleDetection export (inputs image [N, 3, H, W], im_shape [N, 2] and
    scale_factor [N, 2]; outputs boxes [M, 6] and counts [N]), or ModelUnloadableError saying why not."""
    inputs = {spec.name: spec for spec in signature.inputs}
    problems = []
    image, im_shape, scale = (inputs.get(name) for name in DETECTION_INPUTS)
    if len(inputs) != 3 or image is None or im_shape is None or scale is None:
        problems.append(f"it takes {_listed(signature.inputs)}, not the three inputs {', '.join(DETECTION_INPUTS)}")
    else:
        if len(image.shape) != 4 or image.shape[1] not in (3, -1) or image.dtype != "float32":
            problems.append(f"its input {_listed([image])} is not an image batch float32[N, 3, H, W]")
        for spec in (im_shape, scale):
            if len(spec.shape) != 2 or spec.shape[1] not in (2, -1) or spec.dtype != "float32":
                problems.append(f"its input {_listed([spec])} is not float32[N, 2]")
    boxes = [spec for spec in signature.outputs if len(spec.shape) == 2 and spec.shape[1] == 6]
    counts = [spec for spec in signature.outputs if len(spec.shape) == 1]
    if len(signature.outputs) != 2 or len(boxes) != 1 or len(counts) != 1:
        problems.append(
            f"it gives {_listed(signature.outputs)}, not a box tensor [M, 6] (class, score, x1, y1, x2, y2) "
            "and a box count per image [N]"
        )
    if problems or image is None or im_shape is None or scale is None:
        raise ModelUnloadableError(
            "--kind detection cannot serve this model (PaddleDetection's export convention): " + "; ".join(problems),
            hint="serve it with `--kind tensor` (named tensors in and out)",
        )
    height, width = (size if size > 0 else DETECTION_DEFAULT_SIZE for size in image.shape[2:])
    return Detector(
        height=height,
        width=width,
        image=image.name,
        im_shape=im_shape.name,
        scale_factor=scale.name,
        boxes=boxes[0].name,
        counts=counts[0].name,
    )


class Recognizer(Model):
    """What a text-recognition pipeline needs of the model: its line height, width, and classes C."""

    height: int
    width: int | None  # None: any width
    classes: int


RECOGNITION_HEIGHTS = (32, 48)


def recognition_shape(signature: ModelSignature) -> Recognizer:
    """The model as a CTC text recogniser (input [N, 3, 32|48, W], output [N, T, C]), or
    ModelUnloadableError saying why not."""
    inputs, outputs = signature.inputs, signature.outputs
    problems = []
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, -1):
        problems.append(f"it takes {_listed(inputs)}, not one text-line batch [N, 3, 32|48, W]")
    elif inputs[0].shape[2] not in RECOGNITION_HEIGHTS:
        problems.append(f"its input {_listed(inputs)} is {inputs[0].shape[2]} high, not 32 or 48")
    if len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].shape[2] < 2:
        problems.append(f"it gives {_listed(outputs)}, not one per-step class probability batch [N, T, C]")
    if problems:
        raise ModelUnloadableError(
            "--kind ocr-like cannot serve this model: " + "; ".join(problems),
            hint="serve it with `--kind tensor` (named tensors in and out)",
        )
    width = inputs[0].shape[3]
    return Recognizer(height=inputs[0].shape[2], width=width if width > 0 else None, classes=outputs[0].shape[2])


class Dictionary(Model):
    """ocr-like: the character dictionary (one character a line), hashed, and PaddleOCR's class
    convention it fits the model by: blank + characters (+ space, with use_space_char)."""

    folder: Path
    file: str
    sha256: Sha256Hex
    size: int
    characters: int
    use_space_char: bool


def read_dictionary(path: Path) -> list[str]:
    """The characters of a dictionary file, one a line (the line break is not part of it)."""
    if not path.is_file():
        raise DictionaryError(
            f"--dict {path}: not a file", hint="give the character dictionary the model was trained with"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DictionaryError(f"--dict {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    characters = [line.rstrip("\r\n") for line in text.splitlines(keepends=True)]
    if not characters:
        raise DictionaryError(f"--dict {path}: empty", hint="one character a line, as PaddleOCR's ppocr_keys_v1.txt")
    if empty := [number for number, character in enumerate(characters, 1) if not character]:
        raise DictionaryError(
            f"--dict {path}: line {empty[0]} is empty (a dictionary has one character a line)",
            hint="remove the empty lines; the space is added by the convention, not by a line",
        )
    return characters


def uses_space_char(characters: int, classes: int, path: Path) -> bool:
    """PaddleOCR's convention: C = characters + 2 with use_space_char (blank, ..., space), else + 1."""
    if classes == characters + 2:
        return True
    if classes == characters + 1:
        return False
    raise DictionaryError(
        f"--dict {path}: {characters} characters do not fit the model's {classes} classes (PaddleOCR's "
        f"convention: a blank, the characters, and a space when trained with use_space_char, so "
        f"{characters + 1} or {characters + 2})",
        hint="give the dictionary the model was trained with",
    )


def check_dictionary(path: Path, classes: int) -> Dictionary:
    characters = read_dictionary(path)
    return Dictionary(
        folder=path.resolve().parent,
        file=path.name,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        characters=len(characters),
        use_space_char=uses_space_char(len(characters), classes, path),
    )


def check_fits(kind: Kind, signature: ModelSignature) -> None:
    """Refuse (ModelUnloadableError) a model the kind cannot serve, before anything is written."""
    if kind == "classification":
        classification_shape(signature)
    elif kind == "detection":
        detection_shape(signature)
    elif kind == "ocr-like":
        recognition_shape(signature)


def image_size(kind: Kind, signature: ModelSignature) -> tuple[int, int]:
    """(width, height) of the seeded golden image of an image kind."""
    if kind == "classification":
        classes = classification_shape(signature)
        return classes.width, classes.height
    if kind == "detection":
        detector = detection_shape(signature)
        return detector.width * 3 // 2, detector.height  # not the input size: the scale factor matters
    recognizer = recognition_shape(signature)
    return recognizer.height * 4, recognizer.height


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
    if kind == "detection":
        return {"image": "file:seeded.png", "threshold": 0.0}  # every box the model gives
    if kind == "ocr-like":
        return {"image": "file:seeded.png"}
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


def settings_of(
    kind: Kind, model: ModelFiles, signature: ModelSignature, dictionary: Dictionary | None = None
) -> dict[str, Any]:
    """The pipeline's [settings]: the model's files and what the kind's server code needs."""
    common = {"model": ARTIFACT, "model_file": model.model_file, "params_file": model.params_file}
    if kind == "detection":
        detector = detection_shape(signature)
        return {
            **common,
            "image_input": detector.image,
            "im_shape_input": detector.im_shape,
            "scale_factor_input": detector.scale_factor,
            "boxes_output": detector.boxes,
            "counts_output": detector.counts,
            "labels": [],
            "input_size": [detector.height, detector.width],
            "channels": "rgb",
            "scale": 1 / 255,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "threshold": 0.5,
        }
    if kind == "ocr-like":
        if dictionary is None:
            raise DictionaryError("--kind ocr-like needs --dict FILE (the model's character dictionary)")
        recognizer = recognition_shape(signature)
        width = {"input_width": recognizer.width} if recognizer.width else {}
        return {
            **common,
            "dictionary": DICTIONARY,
            "dictionary_file": dictionary.file,
            "use_space_char": dictionary.use_space_char,
            "classes": recognizer.classes,
            "input_height": recognizer.height,
            **width,
            "min_width": 320 if recognizer.height == 48 else 100,  # PP-OCRv3+ lines / the older 32x100
            "max_width": 3200,
        }
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


def pipeline_toml(
    name: str, kind: Kind, model: ModelFiles, signature: ModelSignature, dictionary: Dictionary | None = None
) -> str:
    what = {
        "tensor": "named tensors in and out",
        "classification": "image classification",
        "detection": "object detection",
        "ocr-like": "text recognition",
    }[kind]
    source = {"local": str(model.folder), "sizes": dict(sorted(model.sizes.items()))}
    dictionary_model = (
        "\n[[models]]\n"
        f'name = "{DICTIONARY}"\n'
        f"source = {toml_value({'local': str(dictionary.folder), 'sizes': {dictionary.file: dictionary.size}})}\n"
        "[models.files]\n" + toml_table({dictionary.file: dictionary.sha256})
        if dictionary is not None
        else ""
    )
    settings_note = {
        "tensor": "# The model's tensors as Paddle reports them (-1: any size); requests must match them.",
        "classification": "# How images are fed to the model (ImageNet defaults: check them against how it was\n"
        "# trained) and the class names by output index (labels, or labels_file in the model's folder).",
        "detection": "# The model's tensors by role (PaddleDetection's export convention), how images are fed\n"
        "# (ImageNet defaults: check them against the export's infer_cfg.yml), the class names by class\n"
        "# id (empty: named by number) and the lowest score kept.",
        "ocr-like": "# The dictionary's class convention (PaddleOCR's: blank, the characters, then a space with\n"
        "# use_space_char), checked against the model's classes, and the line height and widths fed.",
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
        + dictionary_model
        + f"\n{settings_note}\n[settings]\n"
        + toml_table(settings_of(kind, model, signature, dictionary))
    )


def config_pbtxt(slug: str, kind: Kind) -> str:
    why = {
        "tensor": "# One JSON request per predictor run (requests may differ in shape); the dynamic batch only\n"
        "# gathers them into one execution.\n",
        "classification": "# The images of a dynamic batch are classified in one predictor run.\n",
        "detection": "# One image per predictor run (the scale factor is per image); the dynamic batch only\n"
        "# gathers requests into one execution.\n",
        "ocr-like": "# One text line per predictor run (lines differ in width); the dynamic batch only gathers\n"
        "# requests into one execution.\n",
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
    """The kind's server/lib/ package: its template, or the shipped pipelines' own code where it
    does the job (the classifier's whole package; the OCR pipeline's recognition and CTC decoding)."""
    if kind in ("tensor", "detection"):
        return _tree(TEMPLATES / kind / "lib", "server/lib")
    if kind == "ocr-like":
        recognition = _shipped(pipelines_dir, "OCR") / "ocr_pipeline" / "recognition.py"
        return {
            **_tree(TEMPLATES / kind / "lib", "server/lib"),
            "server/lib/text_recognition_pipeline/recognition.py": recognition.read_bytes(),
        }
    return _tree(_shipped(pipelines_dir, "image_classification"), "server/lib")


def _shipped(pipelines_dir: Path, pipeline: str) -> Path:
    """A shipped pipeline's server/lib/ (the project's own, when pipelines_dir is elsewhere)."""
    shipped = pipelines_dir / pipeline / "server" / "lib"
    return shipped if shipped.is_dir() else PROJECT_ROOT / "pipelines" / pipeline / "server" / "lib"


def render(
    name: str,
    kind: Kind,
    model: ModelFiles,
    signature: ModelSignature,
    pipelines_dir: Path,
    goldens: str,
    dictionary: Dictionary | None = None,
) -> dict[str, bytes]:
    """Every file of pipelines/<name>/ (relative path -> bytes)."""
    slug = image_slug(name)
    files = {
        "pipeline.toml": pipeline_toml(name, kind, model, signature, dictionary).encode(),
        f"server/model_repo/{slug}/config.pbtxt": config_pbtxt(slug, kind).encode(),
        f"server/model_repo/{slug}/1/model.py": _template(kind, "model.py", slug),
        "client/client.py": _template(kind, "client.py", slug),
        "goldens/cases.toml": goldens.encode(),
        **library(kind, pipelines_dir),
    }
    if kind in IMAGE_KINDS:
        files["goldens/seeded.png"] = seeded_png(*image_size(kind, signature))
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
    elif kind == "detection":
        found = result["detectedObjects"]
        length["detectedObjects"] = len(found)
        for index, item in enumerate(found):
            exact[f"detectedObjects.{index}.categoryId"] = item["categoryId"]
            exact[f"detectedObjects.{index}.categoryName"] = item["categoryName"]
            close[f"detectedObjects.{index}.score"] = [item["score"], ABSOLUTE_TOLERANCE]
            # Coordinates are pixels, answered to 3 places: a rounding step is within this.
            close[f"detectedObjects.{index}.bbox"] = [item["bbox"], max(BOX_TOLERANCE, _tolerance(item["bbox"]))]
    elif kind == "ocr-like":
        exact["text"] = result["text"]
        close["score"] = [result["score"], ABSOLUTE_TOLERANCE]
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
    image_field = "image" if kind in IMAGE_KINDS else None
    required = "image" if kind in IMAGE_KINDS else "inputs"
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
        if kind in IMAGE_KINDS
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
