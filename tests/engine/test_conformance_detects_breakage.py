"""The conformance suite catches a broken pipeline image, and names the check that caught it: images
derived from the recorded image_classification image with one thing broken each are run through
`hpsforge.conformance.run` (as `nox -s conformance` does) with --hps-image."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core.pipelines import load_pipelines
from hpsforge.images import pipeline_images
from hpsforge.prove import conformance

PIPELINE = "image_classification"
SERVER = "/opt/hps/server"
LABELS = 'labels = ["0", "180"]'
SWAPPED = 'labels = ["180", "0"]'


@pytest.fixture(scope="module")
def recorded(config, runtime_cpu):
    """The pipeline image `nox -s images` builds (found up to date when it is)."""
    return pipeline_images.build(config, PIPELINE, load_pipelines()[PIPELINE], "cpu", runtime_cpu)


@pytest.fixture
def derive(tmp_path):
    """Build an image FROM the recorded one with a Dockerfile tail and files; removed afterwards."""
    tags = []

    def build(base: str, dockerfile_tail: str, files: dict[str, bytes] | None = None) -> str:
        context = tmp_path / f"context-{len(tags)}"
        context.mkdir()
        for name, data in (files or {}).items():
            (context / name).write_bytes(data)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(f"FROM {base}\n{dockerfile_tail}")
        tag = f"hpsforge-test/broken-{PIPELINE.replace('_', '-')}:{uuid.uuid4().hex[:12]}"
        tags.append(tag)
        # Logs streamed: python-on-whales' Image result looks the build up by its config id, which
        # the containerd image store does not answer to; the tag is what the suite needs.
        log = []
        try:
            log.extend(
                docker.buildx.build(
                    context,
                    file=dockerfile,
                    tags=[tag],
                    load=True,
                    provenance=False,
                    progress="plain",
                    stream_logs=True,
                )
            )
        except DockerException as error:
            pytest.fail(f"building {tag} failed: {error}\n{''.join(log)[-3000:]}")
        assert docker.image.exists(tag), f"{tag} was built but is not in the engine:\n{''.join(log)[-3000:]}"
        return tag

    yield build
    for tag in tags:
        if docker.image.exists(tag):
            docker.image.remove(tag, force=True)


def _server_file(image: str, path: str, scratch: Path) -> bytes:
    """A file of the image, copied out of a container that is created, never started."""
    container = docker.container.create(image)
    try:
        docker.copy((container, path), scratch / "copied")
        return (scratch / "copied").read_bytes()
    finally:
        docker.container.remove(container, force=True)


def _run_suite(image: str, checks: str = "golden") -> conformance.ConformanceRun:
    return conformance.run([PIPELINE], extra=["--hps-image", f"{PIPELINE}={image}", "-k", checks])


def test_wrong_results_fail_the_golden_check(recorded, derive, tmp_path):
    toml = _server_file(recorded.reference, f"{SERVER}/pipeline.toml", tmp_path).decode()
    assert toml.count(LABELS) == 1, f"{SERVER}/pipeline.toml of {recorded.reference} has no `{LABELS}` line"
    broken = derive(
        recorded.reference,
        f"COPY pipeline.toml {SERVER}/pipeline.toml\n",
        {"pipeline.toml": toml.replace(LABELS, SWAPPED).encode()},
    )
    checked = _run_suite(broken)
    table = conformance.table(checked.results)
    assert not checked.passed, f"the suite passed an image whose labels are swapped:\n{table}"
    golden = [result for result in checked.failed() if result.check.startswith("golden_cases[")]
    assert golden, f"no golden_cases check failed:\n{table}"
    for result in golden:
        assert "upright" in result.message and "categories.0.name" in result.message, (
            f"{result.check} does not name the case and the field that differ: {result.message}"
        )


def test_missing_model_folder_fails_the_suite(recorded, derive):
    model = PIPELINE.replace("_", "-")
    broken = derive(recorded.reference, f"USER 0\nRUN rm -r {SERVER}/model_repo/{model}\nUSER 1000:1000\n")
    # server.sh loads every declared model by name: without its folder the server stops at start.
    checked = _run_suite(broken, "golden or ready_means_every_model_loaded")
    table = conformance.table(checked.results)
    assert not checked.passed, f"the suite passed an image without the model:\n{table}"
    failed = {result.check: result.message for result in checked.failed()}
    assert any(check.startswith("golden_cases[") for check in failed), f"no golden_cases check failed:\n{table}"
    explained = ("not ready", "exited before it was ready", "unknown model", "not found", "not READY")
    for check, message in failed.items():
        assert any(reason in message for reason in explained), (
            f"{check} fails without saying the server is not ready or the model is missing: {message}"
        )
    assert model in failed.get("ready_means_every_model_loaded", ""), (
        f"the failure does not name the missing model {model}:\n{table}"
    )
