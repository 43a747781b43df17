"""new-pipeline's detection and ocr-like kinds, their pure parts: a model checked against each
kind's convention, the character dictionary checked against the model's classes (PaddleOCR's
blank/space convention), CTC greedy decoding worked by hand, and a detector's boxes read."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpsforge.bundle import goldens, scaffold
from hpsforge.core.errors import DictionaryError, ExitCode, ModelUnloadableError
from hpsforge.core.pipelines import Pipeline, load_pipeline
from hpsforge.core.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scaffold" / "detection" / "lib"))
sys.path.insert(0, str(PROJECT_ROOT / "scaffold" / "ocr-like" / "lib"))
from detection_pipeline import Settings as DetectionSettings
from detection_pipeline.boxes import detected_objects
from text_recognition_pipeline import Settings as RecognitionSettings

RECOGNITION = PROJECT_ROOT / "pipelines" / "OCR" / "server" / "lib" / "ocr_pipeline" / "recognition.py"


def _signature(inputs: list[tuple[str, str, list[int]]], outputs: list[tuple[str, str, list[int]]]) -> Any:
    return scaffold.ModelSignature.model_validate(
        {
            "inputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in inputs],
            "outputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in outputs],
        }
    )


DETECTOR = _signature(
    [("image", "float32", [-1, 3, 64, 96]), ("im_shape", "float32", [-1, 2]), ("scale_factor", "float32", [-1, 2])],
    [("fetch_name_0", "float32", [-1, 6]), ("fetch_name_1", "int32", [-1])],
)
RECOGNIZER = _signature([("x", "float32", [-1, 3, 48, -1])], [("softmax_0.tmp_0", "float32", [-1, -1, 12])])
TENSOR = _signature([("x", "float32", [-1, 4])], [("y", "float32", [-1, 3])])


def _ocr_functions() -> dict[str, Any]:
    """The shipped OCR pipeline's load_charset and ctc_decode, run from its own source: the module
    imports OpenCV, which the host lacks, and these two need only numpy."""
    tree = ast.parse(RECOGNITION.read_text(encoding="utf-8"))
    wanted = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in ("load_charset", "ctc_decode")
    ]
    assert len(wanted) == 2, "the OCR pipeline's recognition.py no longer has load_charset and ctc_decode"
    namespace: dict[str, Any] = {"np": np, "Path": Path}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(RECOGNITION), "exec"), namespace)
    return namespace


# -- detection ----------------------------------------------------------------------------------


def test_a_paddledetection_export_is_read_by_role():
    detector = scaffold.detection_shape(DETECTOR)
    assert detector == scaffold.Detector(
        height=64,
        width=96,
        image="image",
        im_shape="im_shape",
        scale_factor="scale_factor",
        boxes="fetch_name_0",
        counts="fetch_name_1",
    )
    any_size = _signature(
        [("image", "float32", [-1, 3, -1, -1]), ("im_shape", "float32", [-1, 2]), ("scale_factor", "float32", [-1, 2])],
        [("n", "int32", [-1]), ("b", "float32", [-1, 6])],
    )
    shape = scaffold.detection_shape(any_size)
    assert (shape.height, shape.width, shape.boxes, shape.counts) == (640, 640, "b", "n")


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (TENSOR, "not the three inputs image, im_shape, scale_factor"),
        (
            _signature(
                [
                    ("image", "float32", [-1, 3, 64, 64]),
                    ("im_shape", "float32", [-1, 3]),
                    ("scale_factor", "float32", [-1, 2]),
                ],
                [("b", "float32", [-1, 6]), ("n", "int32", [-1])],
            ),
            r"im_shape float32\[-1, 3\] is not float32\[N, 2\]",
        ),
        (
            _signature(
                [
                    ("image", "float32", [-1, 3, 64, 64]),
                    ("im_shape", "float32", [-1, 2]),
                    ("scale_factor", "float32", [-1, 2]),
                ],
                [("b", "float32", [-1, 4]), ("n", "int32", [-1])],
            ),
            r"not a box tensor \[M, 6\]",
        ),
    ],
)
def test_a_model_off_the_detection_convention_is_refused_toward_tensor(signature, reason):
    with pytest.raises(ModelUnloadableError, match=reason) as caught:
        scaffold.detection_shape(signature)
    assert caught.value.exit_code is ExitCode.MODEL_UNLOADABLE and "--kind tensor" in (caught.value.hint or "")


def test_boxes_are_split_per_image_thresholded_and_sorted_by_score():
    boxes = np.array(
        [
            [1, 0.40, 1, 2, 3, 4],
            [0, 0.90, 10, 20, 30, 40],
            [-1, 0.99, 0, 0, 0, 0],  # PaddleDetection pads with class -1: never an object
            [2, 0.70, 5, 6, 7.12345, 8],
        ],
        dtype=np.float32,
    )
    first, second = detected_objects(boxes, np.array([3, 1], dtype=np.int32), 0.5, ["cat", "dog"])
    assert [item["categoryId"] for item in first] == [0]
    assert first[0] == {"bbox": [10.0, 20.0, 30.0, 40.0], "categoryId": 0, "categoryName": "cat", "score": 0.9}
    assert second[0]["categoryName"] == "2" and second[0]["bbox"][2] == pytest.approx(7.123)  # no label: its number
    low, _ = detected_objects(boxes, np.array([3, 1]), 0.0, [])
    assert [item["score"] for item in low] == pytest.approx([0.9, 0.4])
    assert detected_objects(np.zeros((0, 6)), np.array([0]), 0.5, []) == [[]]


@pytest.mark.parametrize(
    ("boxes", "counts", "reason"),
    [
        (np.zeros((2, 6)), np.array([1]), r"counts \[1\] do not add up to the 2 boxes"),
        (np.zeros((2, 5)), np.array([2]), r"shape \[2, 5\], not \[M, 6\]"),
        (np.full((1, 6), np.nan), np.array([1]), "NaN"),
    ],
)
def test_a_box_output_that_does_not_parse_is_the_models_fault(boxes, counts, reason):
    with pytest.raises(ValueError, match=reason):
        detected_objects(boxes, counts, 0.5, [])


# -- ocr-like -----------------------------------------------------------------------------------


def test_a_recogniser_is_read_and_others_refused():
    assert scaffold.recognition_shape(RECOGNIZER) == scaffold.Recognizer(height=48, width=None, classes=12)
    with pytest.raises(ModelUnloadableError, match="--kind ocr-like cannot serve.*not one text-line batch"):
        scaffold.recognition_shape(TENSOR)
    tall = _signature([("x", "float32", [-1, 3, 64, 256])], [("p", "float32", [-1, 64, 12])])
    with pytest.raises(ModelUnloadableError, match="64 high, not 32 or 48"):
        scaffold.recognition_shape(tall)


def test_the_dictionary_fits_by_paddleocrs_blank_and_space_convention(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("a\nb\nc\r\n", encoding="utf-8")
    assert scaffold.read_dictionary(path) == ["a", "b", "c"]
    assert scaffold.check_dictionary(path, 5).use_space_char is True  # blank, a, b, c, space
    fitted = scaffold.check_dictionary(path, 4)  # blank, a, b, c
    assert fitted.use_space_char is False and fitted.characters == 3 and fitted.file == "keys.txt"
    with pytest.raises(DictionaryError, match="3 characters do not fit the model's 7 classes.*4 or 5") as caught:
        scaffold.check_dictionary(path, 7)
    assert caught.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "not a file"), (b"", "empty"), (b"a\n\nb\n", "line 2 is empty"), (b"\xff\xfe\n", "not UTF-8")],
)
def test_a_bad_dictionary_is_refused_by_name(tmp_path, content, reason):
    path = tmp_path / "keys.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DictionaryError, match=f"--dict {path}: {reason}"):
        scaffold.read_dictionary(path)


def test_ctc_greedy_decoding_worked_by_hand(tmp_path):
    ocr = _ocr_functions()
    (tmp_path / "keys.txt").write_text("a\nb\n", encoding="utf-8")
    charset = ocr["load_charset"](tmp_path / "keys.txt")
    assert charset == ["<blank>", "a", "b", " "]  # PaddleOCR: blank first, space last
    # Six steps, best classes a a blank a b space (probabilities .9 .8 .7 .6 .5 .4): repeats merge
    # only when adjacent, the blank separates the two a's, so "aab " with mean(.9, .6, .5, .4).
    best = [1, 1, 0, 1, 2, 3]
    top = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    probs = np.full((1, 6, 4), 0.0, dtype=np.float32)
    for step, (index, value) in enumerate(zip(best, top, strict=True)):
        probs[0, step] = (1 - value) / 3
        probs[0, step, index] = value
    ((text, score),) = ocr["ctc_decode"](probs, charset)
    assert text == "aab "
    assert score == pytest.approx((0.9 + 0.6 + 0.5 + 0.4) / 4)
    only_blanks = np.zeros((1, 3, 4), dtype=np.float32)
    only_blanks[0, :, 0] = 1
    assert ocr["ctc_decode"](only_blanks, charset) == [("", 0.0)]


# -- rendering ----------------------------------------------------------------------------------


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "inference.json").write_bytes(b"program bytes")
    (path / "inference.pdiparams").write_bytes(b"parameter bytes")
    return path


@pytest.mark.parametrize("kind", ["detection", "ocr-like"])
def test_rendered_detection_and_ocr_like_pipelines_load(kind, tmp_path):
    model = scaffold.find_model(_model_folder(tmp_path / "model"))
    signature = DETECTOR if kind == "detection" else RECOGNIZER
    dictionary = None
    if kind == "ocr-like":
        (tmp_path / "dict").mkdir()
        (tmp_path / "dict" / "digits.txt").write_text("\n".join("0123456789") + "\n", encoding="utf-8")
        dictionary = scaffold.check_dictionary(tmp_path / "dict" / "digits.txt", 12)
    request = scaffold.seeded_request(kind, signature)
    recorded = (
        {"detectedObjects": [{"bbox": [1.5, 2.0, 30.25, 40.0], "categoryId": 1, "categoryName": "1", "score": 0.8}]}
        if kind == "detection"
        else {"text": "042", "score": 0.75}
    )
    files = scaffold.render(
        "mine", kind, model, signature, tmp_path, scaffold.goldens_toml("mine", kind, request, recorded), dictionary
    )
    folder = tmp_path / "pipelines" / "mine"
    scaffold.write_files(folder, files)
    _, pipeline = load_pipeline(folder)
    assert isinstance(pipeline, Pipeline)
    golden = goldens.load_file(folder)
    assert golden.conformance.image_field == "image" and golden.valid_case.request == request
    assert goldens.problems(golden.valid_case, {"errorCode": 0, "result": recorded}) == []
    assert goldens.problems(golden.valid_case, {"errorCode": 0, "result": {"detectedObjects": [], "text": "x"}})
    settings = tomllib.loads((folder / "pipeline.toml").read_text())["settings"]
    # The server code's own [settings] model takes what was written (it refuses to load otherwise).
    (DetectionSettings if kind == "detection" else RecognitionSettings).model_validate(settings)
    if kind == "detection":
        assert (settings["boxes_output"], settings["counts_output"], settings["input_size"]) == (
            "fetch_name_0",
            "fetch_name_1",
            [64, 96],
        )
        assert (folder / "goldens/seeded.png").read_bytes() == scaffold.seeded_png(144, 64)
        assert (folder / "server/lib/detection_pipeline/boxes.py").is_file()
    else:
        assert dictionary is not None
        model_artifact, dictionary_artifact = pipeline.models
        assert dictionary_artifact.name == "dictionary" and dictionary_artifact.files == {
            "digits.txt": dictionary.sha256
        }
        assert dictionary_artifact.source.local == str(tmp_path / "dict")
        assert settings["use_space_char"] is True and settings["classes"] == 12 and "input_width" not in settings
        # The shipped OCR pipeline's recognition module, byte for byte.
        copied = folder / "server/lib/text_recognition_pipeline/recognition.py"
        assert copied.read_bytes() == RECOGNITION.read_bytes()


def test_the_kinds_are_the_four_the_issue_names():
    assert scaffold.KINDS == ("tensor", "classification", "detection", "ocr-like")
    assert [scaffold.check_kind(kind) for kind in scaffold.KINDS] == list(scaffold.KINDS)
