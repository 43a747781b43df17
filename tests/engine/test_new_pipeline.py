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
    ModelUnloadableError,
    NoModelError,
    PipelineExistsError,
    PipelineNameError,
    UnknownKindError,
)
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.prove import conformance

# Two seeded networks: a dense one taking a named tensor (served as `tensor`), saved as PIR
# (Paddle 3's default), and a small convolutional classifier (served as `classification`), saved
# in the older ProgramDesc format (the PIR API off).
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


kind, out = sys.argv[1], sys.argv[2]
if kind == "dense":
    net, spec = Dense(), paddle.static.InputSpec([None, 4], "float32", name="features")
else:
    net, spec = Classifier(), paddle.static.InputSpec([None, 3, 32, 32], "float32", name="image")
net.eval()
paddle.jit.save(net, os.path.join(out, "inference"), input_spec=[spec])
print(sorted(os.listdir(out)))
"""
SHIPPED = ("OCR", "face_recognition", "image_classification", "lexical_analysis")
TENSOR, CLASSIFIER = "seeded_dense", "seeded_classifier"


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
    assert sorted(path.name for path in pir.iterdir()) == ["inference.json", "inference.pdiparams"]
    assert {"inference.pdmodel", "inference.pdiparams"} <= {path.name for path in old.iterdir()}
    return {"pir": pir, "pdmodel": old, "empty": root}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A project of its own: copies of hpsforge.toml and lock/ (the test suite's image record stays
    its own, HPSFORGE_IMAGES_RECORD), the shipped pipelines and the other folders a build reads (sdk/,
    dockerfiles/, vendor_blobs/, and bench/ and docs/ for their locks' declarations) linked read-only."""
    project = tmp_path_factory.mktemp("project")
    shutil.copyfile(PROJECT_ROOT / "hpsforge.toml", project / "hpsforge.toml")
    shutil.copytree(PROJECT_ROOT / "lock", project / "lock")
    for folder in ("dockerfiles", "sdk", "vendor_blobs", "bench", "docs"):
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
    print(
        f"\nnew-pipeline to a serving image: {TENSOR} (PIR) {seconds[TENSOR]:.1f} s, "
        f"{CLASSIFIER} (.pdmodel) {seconds[CLASSIFIER]:.1f} s, {TENSOR} again (warm) {seconds['warm']:.1f} s"
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
    cli.run_assemble([TENSOR, CLASSIFIER])
    served = scratch / "output" / f"{TENSOR}_sdk" / "server"
    for name in ("inference.json", "inference.pdiparams"):
        assert (served / "models" / "model" / name).read_bytes() == (models["pir"] / name).read_bytes()
    assert (scratch / "output" / f"{CLASSIFIER}_sdk" / "server" / "models" / "model" / "inference.pdmodel").is_file()
    assert (scratch / "output" / f"{TENSOR}_sdk.tar.gz").is_file()


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
    _refused(scratch, ["fresh", "--model", str(models["pir"]), "--kind", "ocr-like"], UnknownKindError, "not a kind")
    _refused(
        scratch,
        ["fresh", "--model", str(models["pir"]), "--kind", "classification"],
        ModelUnloadableError,
        "--kind tensor",
    )
