"""`nox -s new-pipeline`: a user's Paddle model folder becomes pipelines/<Name>/.

The model's inputs and outputs are read by loading it with real Paddle in the cpu runtime image
(scaffold/probe_model.py); its files enter the content store as locked inputs; every file is
rendered by bundle/scaffold.py into a hidden folder and renamed into place at the end. With
--record-goldens the pipeline image is built and the model, through its own model.py in that
image (scaffold/answer_requests.py), answers the seeded request: the answer becomes the goldens.
Any failure leaves pipelines/ as it was.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bundle import scaffold
from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import DictionaryError, HpsforgeError, ModelUnloadableError
from hpsforge.core.pipelines import image_slug, load_pipeline
from hpsforge.core.project import Project
from hpsforge.core.settings import settings
from hpsforge.images import graph, pipeline_images, runtime
from hpsforge.inputs.store import ContentStore, scratch_dir
from hpsforge.locks.images_lock import ImageRecord

TARGET = "cpu"
TOOLS_IN_CONTAINER = "/hpsforge-scaffold"
PROBE_MARKER = "hpsforge-probe:"
ANSWER_MARKER = "hpsforge-answer:"


@dataclass(frozen=True)
class NewPipeline:
    folder: Path
    image: ImageRecord | None  # built when goldens were recorded
    seconds: float


def _marked(text: str, marker: str) -> list[dict[str, Any]]:
    return [json.loads(line[len(marker) :]) for line in text.splitlines() if line.startswith(marker)]


def _readable_copy(files: dict[str, Path], into: Path) -> Path:
    """The files in a folder the images' user (uid 1000) can read, whatever the source's modes."""
    into.mkdir(mode=0o755)
    for name, path in files.items():
        shutil.copyfile(path, into / name)
        (into / name).chmod(0o644)
    return into


def _run_tool(
    image: str, script: str, arguments: list[str], mounts: list[tuple[Path, str]], envs: dict[str, str]
) -> str:
    """A scaffold/ script run by the image's Python with no network; its output (also on failure)."""
    volumes = [(str(scaffold.TEMPLATES), TOOLS_IN_CONTAINER, "ro"), *((str(path), at, "ro") for path, at in mounts)]
    try:
        output = docker.run(
            image,
            [f"{TOOLS_IN_CONTAINER}/{script}", *arguments],
            entrypoint="python3",
            volumes=volumes,
            envs=envs,
            networks=["none"],
            remove=True,
        )
    except DockerException as error:
        return f"{error.stdout or ''}\n{error.stderr or ''}"
    return str(output)


def probe(runtime_image: ImageRecord, model: scaffold.ModelFiles) -> scaffold.ModelSignature:
    """The model's inputs and outputs, as real Paddle loads them in the runtime image."""
    with tempfile.TemporaryDirectory(prefix="new-pipeline-probe-", dir=scratch_dir()) as tmp:
        files = {name: model.folder / name for name in (model.model_file, model.params_file)}
        folder = _readable_copy(files, Path(tmp) / "model")
        # The older ProgramDesc format loads as a static program only with the PIR API off.
        envs = {"FLAGS_enable_pir_api": "0"} if model.format == "program" else {}
        output = _run_tool(
            runtime_image.reference,
            "probe_model.py",
            [f"/model/{model.model_file}", f"/model/{model.params_file}"],
            [(folder, "/model")],
            envs,
        )
    answers = _marked(output, PROBE_MARKER)
    if not answers:
        tail = "\n    ".join(output.strip().splitlines()[-12:])
        raise ModelUnloadableError(f"Paddle could not load {model.folder} in {runtime_image.reference}:\n    {tail}")
    return scaffold.parse_signature(answers[-1])


def answer(image: ImageRecord, asked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Envelopes of requests answered by the pipeline image's own model.py, in-process."""
    with tempfile.TemporaryDirectory(prefix="new-pipeline-answer-", dir=scratch_dir()) as tmp:
        folder = Path(tmp) / "requests"
        folder.mkdir(mode=0o755)
        (folder / "requests.json").write_text(json.dumps(asked), encoding="utf-8")
        (folder / "requests.json").chmod(0o644)
        output = _run_tool(
            image.reference, "answer_requests.py", ["/requests/requests.json"], [(folder, "/requests")], {}
        )
    envelopes = _marked(output, ANSWER_MARKER)
    if len(envelopes) != len(asked):
        tail = "\n    ".join(output.strip().splitlines()[-15:])
        raise HpsforgeError(f"the pipeline image {image.reference} did not answer the seeded request:\n    {tail}")
    return envelopes


def runtime_image(project: Project) -> ImageRecord:
    """The cpu runtime, built or found up to date as `nox -s images -- cpu` does."""
    built = graph.BuildGraph.of(project, [TARGET], with_pipelines=False).build(graph.BuildOptions())
    return built[runtime.role(TARGET)]


def create(
    project: Project,
    name: str,
    model_folder: Path,
    kind_name: str,
    *,
    record_goldens: bool,
    dictionary_file: Path | None = None,
) -> NewPipeline:
    """Write pipelines/<name>/ for the model in `model_folder`; nothing is left on failure."""
    started = time.monotonic()
    pipelines_dir = settings().pipelines_dir
    kind = scaffold.check_kind(kind_name)
    if (kind == "ocr-like") != (dictionary_file is not None):
        raise DictionaryError(
            "--kind ocr-like needs --dict FILE (the model's character dictionary, one character a line)"
            if kind == "ocr-like"
            else f"--dict is for --kind ocr-like only, not --kind {kind}",
        )
    scaffold.check_name(name, pipelines_dir)
    model = scaffold.find_model(model_folder)
    if dictionary_file is not None:
        scaffold.read_dictionary(dictionary_file)  # a bad file is refused before Paddle starts
    base = runtime_image(project)
    signature = probe(base, model)
    scaffold.check_fits(kind, signature)  # refused before anything is written
    dictionary = None
    if dictionary_file is not None:
        dictionary = scaffold.check_dictionary(dictionary_file, scaffold.recognition_shape(signature).classes)
    store = ContentStore()
    for file_name, sha256 in model.sha256.items():
        store.add(model.folder / file_name, sha256, f"{name}: {file_name}")
    if dictionary is not None:
        store.add(dictionary.folder / dictionary.file, dictionary.sha256, f"{name}: {dictionary.file}")
    request = scaffold.seeded_request(kind, signature)
    destination = pipelines_dir / name
    image = None
    with scaffold.staged(pipelines_dir, name) as staging:
        scaffold.write_files(
            staging,
            scaffold.render(
                name,
                kind,
                model,
                signature,
                pipelines_dir,
                scaffold.goldens_toml(name, kind, request, None),
                dictionary,
            ),
        )
        load_pipeline(staging)  # what the other sessions will read must load
        scaffold.publish(staging, destination)
    if record_goldens:
        try:
            image = record(project.config, name, kind, request, base)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
    return NewPipeline(destination, image, time.monotonic() - started)


def record(
    config: ProjectConfig, name: str, kind: scaffold.Kind, request: dict[str, Any], base: ImageRecord
) -> ImageRecord:
    """Build the pipeline image, have it answer the seeded request, write the answer as the goldens."""
    folder = settings().pipelines_dir / name
    _, pipeline = load_pipeline(folder)
    image = pipeline_images.build(config, name, pipeline, TARGET, base)
    goldens_dir = folder / "goldens"
    resolved = json.loads(json.dumps(request))
    if kind in scaffold.IMAGE_KINDS:
        resolved["image"] = base64.b64encode((goldens_dir / "seeded.png").read_bytes()).decode("ascii")
    slug = image_slug(name)
    (envelope,) = answer(image, [{"model": slug, "request": resolved}])
    if envelope.get("errorCode") != 0:
        raise HpsforgeError(
            f"{name}: the model answered the seeded request with error {envelope.get('errorCode')}: "
            f"{envelope.get('errorMsg')}"
        )
    text = scaffold.goldens_toml(name, kind, request, envelope["result"])
    with scaffold.staged(settings().pipelines_dir, name) as staging:
        (staging / "cases.toml").write_text(text, encoding="utf-8")
        (staging / "cases.toml").replace(goldens_dir / "cases.toml")
    return image
