"""Reproducibility: a rebuild from nothing gives the same digest; a difference is explained."""

from pathlib import Path
from xml.etree import ElementTree

import pytest
from python_on_whales import docker

from hpsforge.core.errors import DigestMismatchError
from hpsforge.images import buildkit
from hpsforge.images.graph import BuildGraph, Node
from hpsforge.locks import images_lock
from hpsforge.prove import repro


def _marker_image(tmp_path, shared_images, name: str, marker: str) -> images_lock.ImageRecord:
    context = tmp_path / name
    context.mkdir()
    (context / "same.txt").write_text("identical in both images\n")
    (context / "marker.txt").write_text(marker)
    (context / "Dockerfile").write_text("FROM base\nCOPY same.txt /srv/same.txt\nCOPY marker.txt /srv/marker.txt\n")
    return buildkit.build(
        buildkit.ImageBuild(
            role="repro-test",
            dockerfile=context / "Dockerfile",
            context=context,
            reference=f"hpsforge/repro-test:{name}",
            source_date_epoch=0,
            input_sha256=f"repro-test-{name}-{marker}",
            parents=(("base", shared_images["base"]),),
        )
    )


def test_the_report_names_the_one_file_that_differs(tmp_path, shared_images):
    first = _marker_image(tmp_path, shared_images, "first", "one\n")
    second = _marker_image(tmp_path, shared_images, "second", "two!\n")
    try:
        assert first.digest != second.digest
        report = tmp_path / "report.txt"
        lines = repro.explain(first, second, report)
        text = report.read_text()
        assert text == "\n".join(lines) + "\n"
        changed = [line for line in lines if line.strip().startswith("changed ")]
        assert len(changed) == 1 and "/srv/marker.txt" in changed[0]
        assert "size 4 -> 5" in changed[0] and "sha256" in changed[0]
        assert "/srv/same.txt" not in text
        assert sum(line.startswith("layer ") for line in lines) == 1
    finally:
        for image in (first, second):
            docker.image.remove(image.reference, force=True)


def _clock_graph(tmp_path, shared_images) -> BuildGraph:
    """Two small images on the base: one reproducible, one holding its build time."""

    def node(name: str, step: str) -> Node:
        context = tmp_path / name
        context.mkdir()
        (context / "same.txt").write_text("identical in every build\n")
        (context / "Dockerfile").write_text(f"FROM base\nCOPY same.txt /srv/same.txt\n{step}\n")

        def build(parents, options):
            return buildkit.build(
                buildkit.ImageBuild(
                    role=f"pipeline-{name}-test",
                    dockerfile=context / "Dockerfile",
                    context=context,
                    reference=f"hpsforge/{name}-test:{name}{options.tag_suffix}",
                    source_date_epoch=0,
                    input_sha256=f"repro-graph-test-{name}",
                    parents=(("base", shared_images["base"]),),
                ),
                no_cache=options.no_cache,
            )

        return Node(f"pipeline-{name}-test", "pipeline", (), build, target="test", pipeline=name)

    return BuildGraph(
        [node("steady", "RUN echo steady > /srv/steady.txt"), node("clock", "RUN date +%s%N > /srv/built-at")]
    )


def test_a_non_reproducible_image_is_named_with_its_layer_and_file(tmp_path, shared_images, diffoscope_tool):
    graph = _clock_graph(tmp_path, shared_images)
    first = graph.build()
    images_lock.ImagesLock.read().with_records(first).write()  # recorded, as `nox -s images` does
    try:
        report = repro.run(graph, ["test"], report_dir=tmp_path / "repro")
        verdicts = {image.role: image.verdict for image in report.images}
        assert verdicts == {"pipeline-steady-test": "reproducible", "pipeline-clock-test": "not-reproducible"}
        clock = next(image for image in report.images if image.role == "pipeline-clock-test")
        assert clock.first == first["pipeline-clock-test"].digest != clock.rebuilt
        difference = Path(clock.difference_report).read_text()
        assert "layer 3:" in difference and "changed /srv/built-at" in difference
        assert "/srv/same.txt" not in difference and "/srv/steady.txt" not in difference
        assert "diffoscope /srv/built-at:" in difference  # and its text of the two files
        assert difference.split("diffoscope /srv/built-at:", 1)[1].count("\n  ") >= 2
        saved = repro.read_report(tmp_path / "repro" / "report.json")
        assert saved.images == report.images and saved.machine.engine
        suite = ElementTree.parse(tmp_path / "repro" / "junit.xml").getroot()
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
        failing = [case.get("name") for case in suite if case.find("failure") is not None]
        assert failing == ["pipeline-clock-test"]
        with pytest.raises(DigestMismatchError) as refused:
            repro.fail_on(report, tmp_path / "repro")
        assert refused.value.exit_code == 6
    finally:
        for role in ("steady", "clock"):
            for tag in (role, f"{role}-repro"):
                docker.image.remove(f"hpsforge/{role}-test:{tag}", force=True)


def test_a_copy_only_server_image_is_reproducible_without_the_timestamp_rewrite(tmp_path, runtime_cpu, config):
    import shutil
    import time

    from hpsforge.bench import rebuild

    shutil.copytree(rebuild.SAMPLE_REPOSITORY, tmp_path / "model_repository")
    (tmp_path / "Dockerfile").write_text(rebuild.SERVER_DOCKERFILE)
    first = rebuild.server_image(runtime_cpu, tmp_path, config.base.source_date_epoch, no_cache=True)
    time.sleep(1.1)  # a wall-clock timestamp leaking into a layer would now differ
    (tmp_path / "model_repository" / "add_sub" / "config.pbtxt").touch()
    second = rebuild.server_image(runtime_cpu, tmp_path, config.base.source_date_epoch, no_cache=True)
    assert first.digest == second.digest


def test_pipeline_images_are_reproducible(runtime_cpu, config):
    import time

    from hpsforge.core.pipelines import load_pipelines
    from hpsforge.images import pipeline_images

    pipeline = load_pipelines()["image_classification"]
    first = pipeline_images.build(config, "image_classification", pipeline, "cpu", runtime_cpu, no_cache=True)
    time.sleep(1.1)  # a wall-clock timestamp leaking into the layer would now differ
    second = pipeline_images.build(config, "image_classification", pipeline, "cpu", runtime_cpu, no_cache=True)
    assert first.digest == second.digest
