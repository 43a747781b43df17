"""`nox -s new-pipeline` end to end, in a scratch copy of the project (HPSFORGE_PROJECT): small seeded
networks saved by paddle.jit.save in the runtime image, in both of Paddle's formats (PIR
inference.json, and the older inference.pdmodel), become pipelines whose images pass the whole
conformance suite with the goldens recorded from their own answers, and assemble; bad input is
refused by its named error with nothing written."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from python_on_whales import docker

from hpsforge import cli
from hpsforge.bundle import goldens
from hpsforge.core.errors import (
    DictionaryError,
    ModelUnloadableError,
    NoModelError,
    PipelineExistsError,
    PipelineNameError,
    UnknownKindError,
)
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.prove import conformance

# Four seeded networks: a dense one taking a named tensor (served as `tensor`), saved as PIR
# (Paddle 3's default); a small convolutional classifier (served as `classification`), saved in the
# older ProgramDesc format (the PIR API off); a detector of PaddleDetection's export convention
# (`detection`, PIR) and a CTC recogniser over 10 digits + blank + space (`ocr-like`, ProgramDesc).
MAKE_MODELS = """
import os, sys
import paddle

paddle.seed(20261206)


class Dense(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = paddle.nn.Linear(4, 8), paddle.nn.Linear(8, 3)

    def forward(self, features):
        return paddle.nn.functional.softmax(self.out(paddle.tanh(self.hidden(features))), axis=-1)


class Classifier(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = paddle.nn.Conv2D(3, 4, 3, stride=4), paddle.nn.Linear(4, 3)

    def forward(self, image):
        pooled = paddle.nn.functional.adaptive_avg_pool2d(self.conv(image), 1)
        return paddle.nn.functional.softmax(self.fc(paddle.flatten(pooled, 1)), axis=-1)


class Detector(paddle.nn.Layer):
    # PaddleDetection-shaped: 8 candidate boxes per image from a conv, the best 3 kept (top-k).

    def __init__(self):
        super().__init__()
        self.conv, self.head = paddle.nn.Conv2D(3, 4, 3, stride=4), paddle.nn.Linear(4, 8 * 6)

    def forward(self, image, im_shape, scale_factor):
        pooled = paddle.flatten(paddle.nn.functional.adaptive_avg_pool2d(self.conv(image), 1), 1)
        rows = paddle.nn.functional.sigmoid(paddle.reshape(self.head(pooled), [-1, 8, 6]))
        _, best = paddle.topk(rows[:, :, 1], 3, axis=1)
        rows = paddle.take_along_axis(rows, paddle.tile(paddle.unsqueeze(best, -1), [1, 1, 6]), axis=1)
        classes = paddle.floor(rows[:, :, 0:1] * 2.999)
        original = im_shape / scale_factor  # [N, 2]: height, width of the image before resizing
        size = paddle.unsqueeze(paddle.tile(paddle.flip(original, [1]), [1, 2]), 1)  # [N, 1, 4]: w, h, w, h
        low = paddle.minimum(rows[:, :, 2:4], rows[:, :, 4:6])
        high = paddle.maximum(rows[:, :, 2:4], rows[:, :, 4:6])
        boxes = paddle.concat([classes, rows[:, :, 1:2], paddle.concat([low, high], axis=2) * size], axis=2)
        counts = paddle.cast(paddle.sum(paddle.ones_like(rows[:, :, 0]), axis=1), "int32")
        return paddle.reshape(boxes, [-1, 6]), counts


class Recognizer(paddle.nn.Layer):
    # CRNN-shaped: a conv, the height averaged away, 12 classes (blank, 10 digits, space) per step.

    def __init__(self):
        super().__init__()
        self.conv, self.fc = paddle.nn.Conv2D(3, 8, 3, stride=4, padding=1), paddle.nn.Linear(8, 12)

    def forward(self, image):
        steps = paddle.transpose(paddle.mean(self.conv(image), axis=2), [0, 2, 1])
        return paddle.nn.functional.softmax(self.fc(steps) * 4, axis=-1)


kind, out = sys.argv[1], sys.argv[2]
if kind == "dense":
    net, spec = Dense(), [paddle.static.InputSpec([None, 4], "float32", name="features")]
elif kind == "classifier":
    net, spec = Classifier(), [paddle.static.InputSpec([None, 3, 32, 32], "float32", name="image")]
elif kind == "detector":
    net, spec = Detector(), [
        paddle.static.InputSpec([None, 3, 64, 64], "float32", name="image"),
        paddle.static.InputSpec([None, 2], "float32", name="im_shape"),
        paddle.static.InputSpec([None, 2], "float32", name="scale_factor"),
    ]
else:
    net, spec = Recognizer(), [paddle.static.InputSpec([None, 3, 32, None], "float32", name="x")]
net.eval()
paddle.jit.save(net, os.path.join(out, "inference"), input_spec=spec)
print(sorted(os.listdir(out)))
"""
SHIPPED = ("OCR", "face_recognition", "image_classification", "lexical_analysis")
TENSOR, CLASSIFIER = "seeded_dense", "seeded_classifier"
DETECTOR, RECOGNIZER = "seeded_detector", "seeded_recognizer"
DIGITS = "0123456789"


def _make_model(runtime_image: str, folder: Path, kind: str, envs: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # the image's user (uid 1000) writes the model
    folder.parent.chmod(0o755)
    (folder.parent / "make_models.py").write_text(MAKE_MODELS)
    (folder.parent / "make_models.py").chmod(0o644)
    docker.run(
        runtime_image,
        ["/work/make_models.py", kind, f"/work/{folder.name}"],
        entrypoint="python3",
        volumes=[(str(folder.parent), "/work", "rw")],
        envs=envs,
        networks=["none"],
        remove=True,
    )
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, runtime_cpu):
    root = tmp_path_factory.mktemp("models")
    pir = _make_model(runtime_cpu.reference, root / "dense_pir", "dense", {})
    old = _make_model(runtime_cpu.reference, root / "classifier_pdmodel", "classifier", {"FLAGS_enable_pir_api": "0"})
    detector = _make_model(runtime_cpu.reference, root / "detector_pir", "detector", {})
    recognizer = _make_model(
        runtime_cpu.reference, root / "recognizer_pdmodel", "recognizer", {"FLAGS_enable_pir_api": "0"}
    )
    assert sorted(path.name for path in pir.iterdir()) == ["inference.json", "inference.pdiparams"]
    assert {"inference.pdmodel", "inference.pdiparams"} <= {path.name for path in old.iterdir()}
    dictionary = root / "dictionary" / "digits.txt"  # elsewhere than the model: its own locked source
    dictionary.parent.mkdir()
    dictionary.write_text("\n".join(DIGITS) + "\n", encoding="utf-8")
    return {
        "pir": pir,
        "pdmodel": old,
        "detector": detector,
        "recognizer": recognizer,
        "dictionary": dictionary,
        "empty": root,
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A project of its own: copies of hpsforge.toml and lock/ (the test suite's image record stays
    its own, HPSFORGE_IMAGES_RECORD), the shipped pipelines and the other folders a build reads (sdk/,
    dockerfiles/, vendor_blobs/, and bench/, docs/ and converter/ for their locks' declarations)
    linked read-only."""
    project = tmp_path_factory.mktemp("project")
    shutil.copyfile(PROJECT_ROOT / "hpsforge.toml", project / "hpsforge.toml")
    shutil.copytree(PROJECT_ROOT / "lock", project / "lock")
    for folder in ("dockerfiles", "sdk", "vendor_blobs", "bench", "docs", "converter"):
        (project / folder).symlink_to(PROJECT_ROOT / folder, target_is_directory=True)
    (project / "pipelines").mkdir()
    for name in SHIPPED:
        (project / "pipelines" / name).symlink_to(PROJECT_ROOT / "pipelines" / name, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPSFORGE_PROJECT", str(project))
        yield project


@pytest.fixture(scope="module")
def scaffolded(scratch, models, engine_status):
    """Both pipelines written with --record-goldens (their images built), each timed; the tensor
    one made twice, the second time on a warm image."""
    seconds = {}
    for name, model, kind in ((TENSOR, models["pir"], "tensor"), (CLASSIFIER, models["pdmodel"], "classification")):
        started = time.monotonic()
        cli.run_new_pipeline([name, "--model", str(model), "--kind", kind, "--record-goldens"])
        seconds[name] = time.monotonic() - started
    first = (scratch / "pipelines" / TENSOR / "goldens" / "cases.toml").read_text()
    shutil.rmtree(scratch / "pipelines" / TENSOR)
    started = time.monotonic()
    cli.run_new_pipeline([TENSOR, "--model", str(models["pir"]), "--record-goldens"])
    seconds["warm"] = time.monotonic() - started
    assert (scratch / "pipelines" / TENSOR / "goldens" / "cases.toml").read_text() == first, (
        "the goldens recorded twice from the same model differ"
    )
    for name, argv in (
        (DETECTOR, ["--model", str(models["detector"]), "--kind", "detection"]),
        (RECOGNIZER, ["--model", str(models["recognizer"]), "--kind", "ocr-like", "--dict", str(models["dictionary"])]),
    ):
        started = time.monotonic()
        cli.run_new_pipeline([name, *argv, "--record-goldens"])
        seconds[name] = time.monotonic() - started
    print(
        f"\nnew-pipeline to a serving image: {TENSOR} (tensor, PIR) {seconds[TENSOR]:.1f} s, "
        f"{CLASSIFIER} (classification, .pdmodel) {seconds[CLASSIFIER]:.1f} s, "
        f"{DETECTOR} (detection, PIR) {seconds[DETECTOR]:.1f} s, "
        f"{RECOGNIZER} (ocr-like, .pdmodel) {seconds[RECOGNIZER]:.1f} s, "
        f"{TENSOR} again (warm) {seconds['warm']:.1f} s"
    )
    return seconds


def test_recorded_goldens_check_the_models_real_answer(scratch, scaffolded):
    tensor = goldens.load_file(scratch / "pipelines" / TENSOR).valid_case
    assert tensor.exact == {"outputs.0.name": tensor.exact["outputs.0.name"], "outputs.0.shape": [1, 3]}
    (scores, _tolerance), *_ = tensor.close.values()
    assert abs(sum(scores[0]) - 1) < 1e-5, f"the softmax's recorded outputs do not add up to 1: {scores}"
    classifier = goldens.load_file(scratch / "pipelines" / CLASSIFIER).valid_case
    assert classifier.length == {"categories": 3}
    assert sorted(classifier.exact[f"categories.{i}.id"] for i in range(3)) == [0, 1, 2]


def test_detection_and_ocr_like_goldens_hold_the_models_real_answer(scratch, scaffolded):
    detector = goldens.load_file(scratch / "pipelines" / DETECTOR).valid_case
    assert detector.length == {"detectedObjects": 3}, "the seeded detector keeps its top 3 boxes at threshold 0"
    for index in range(3):
        (x1, y1, x2, y2), _tolerance = detector.close[f"detectedObjects.{index}.bbox"]
        # The boxes are fractions of the original image (96 x 64): scaled back by scale_factor.
        assert 0 <= x1 <= x2 <= 96 and 0 <= y1 <= y2 <= 64, detector.close
        assert detector.exact[f"detectedObjects.{index}.categoryId"] in (0, 1, 2)
    scores = [detector.close[f"detectedObjects.{index}.score"][0] for index in range(3)]
    assert scores == sorted(scores, reverse=True), scores
    recognizer = goldens.load_file(scratch / "pipelines" / RECOGNIZER).valid_case
    assert set(recognizer.exact["text"]) <= set(DIGITS + " "), recognizer.exact
    toml = (scratch / "pipelines" / RECOGNIZER / "pipeline.toml").read_text()
    assert "use_space_char = true" in toml and 'name = "dictionary"' in toml and "digits.txt" in toml


def test_detection_and_ocr_like_pass_the_conformance_suite(scaffolded):
    checked = conformance.run([DETECTOR, RECOGNIZER])
    table = conformance.table(checked.results)
    print("\n" + table)
    assert checked.passed, f"the conformance suite failed on the new pipelines:\n{table}"
    golden = [result for result in checked.results if result.check.startswith("golden_cases[")]
    assert len(golden) == 8 and all(result.outcome == "passed" for result in golden), table
    clients = [result for result in checked.results if result.check.startswith("command_line_client")]
    assert len(clients) == 4 and all(result.outcome == "passed" for result in clients), table


def test_both_pipelines_pass_the_conformance_suite(scaffolded):
    checked = conformance.run([TENSOR, CLASSIFIER])
    table = conformance.table(checked.results)
    print("\n" + table)
    assert checked.passed, f"the conformance suite failed on the new pipelines:\n{table}"
    golden = [result for result in checked.results if result.check.startswith("golden_cases[")]
    assert len(golden) == 8 and all(result.outcome == "passed" for result in golden), table
    clients = [result for result in checked.results if result.check.startswith("command_line_client")]
    assert len(clients) == 4 and all(result.outcome == "passed" for result in clients), table


def test_the_new_pipelines_assemble(scratch, scaffolded, models):
    cli.run_assemble([TENSOR, CLASSIFIER, RECOGNIZER])
    served = scratch / "output" / f"{TENSOR}_sdk" / "server"
    for name in ("inference.json", "inference.pdiparams"):
        assert (served / "models" / "model" / name).read_bytes() == (models["pir"] / name).read_bytes()
    assert (scratch / "output" / f"{CLASSIFIER}_sdk" / "server" / "models" / "model" / "inference.pdmodel").is_file()
    assert (scratch / "output" / f"{TENSOR}_sdk.tar.gz").is_file()
    dictionary = scratch / "output" / f"{RECOGNIZER}_sdk" / "server" / "models" / "dictionary" / "digits.txt"
    assert dictionary.read_bytes() == models["dictionary"].read_bytes()


def _refused(scratch: Path, argv: list[str], error: type[Exception], match: str) -> None:
    before = sorted(os.listdir(scratch / "pipelines"))
    with pytest.raises(error, match=match):
        cli.run_new_pipeline(argv)
    assert sorted(os.listdir(scratch / "pipelines")) == before, "a refused new-pipeline left files behind"


def test_bad_input_is_refused_by_name_and_writes_nothing(scratch, models, tmp_path, runtime_cpu, engine_status):
    (tmp_path / "notes.txt").write_text("no model here")
    _refused(scratch, ["fresh", "--model", str(tmp_path)], NoModelError, "no Paddle inference model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "inference.json").write_text('{"not": "a program"}')
    (broken / "inference.pdiparams").write_bytes(os.urandom(64))
    _refused(scratch, ["fresh", "--model", str(broken)], ModelUnloadableError, "Paddle cannot load the model")
    _refused(scratch, ["OCR", "--model", str(models["pir"])], PipelineExistsError, "exists already")
    _refused(scratch, ["ocr", "--model", str(models["pir"])], PipelineExistsError, "same Triton model")
    _refused(scratch, ["a/b", "--model", str(models["pir"])], PipelineNameError, "cannot name a pipeline")
    _refused(scratch, ["fresh", "--model", str(models["pir"]), "--kind", "ocr"], UnknownKindError, "not a kind")
    _refused(
        scratch,
        ["fresh", "--model", str(models["pir"]), "--kind", "detection"],
        ModelUnloadableError,
        "--kind detection cannot serve this model",
    )
    _refused(scratch, ["fresh", "--model", str(models["recognizer"]), "--kind", "ocr-like"], DictionaryError, "--dict")
    (tmp_path / "letters.txt").write_text("a\nb\nc\n")
    _refused(
        scratch,
        ["fresh", "--model", str(models["recognizer"]), "--kind", "ocr-like", "--dict", str(tmp_path / "letters.txt")],
        DictionaryError,
        "3 characters do not fit the model's 12 classes",
    )
    _refused(
        scratch,
        ["fresh", "--model", str(models["pir"]), "--kind", "classification"],
        ModelUnloadableError,
        "--kind tensor",
    )
