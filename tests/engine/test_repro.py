"""Reproducibility: a rebuild from nothing gives the same digest; a difference is explained."""

import pytest
from python_on_whales import docker

from hpsforge import buildkit, repro

pytestmark = pytest.mark.engine


def _marker_image(tmp_path, shared_images, name: str, marker: str) -> buildkit.ImageRecord:
    context = tmp_path / name
    context.mkdir()
    (context / "same.txt").write_text("identical in both images\n")
    (context / "marker.txt").write_text(marker)
    (context / "Dockerfile").write_text("FROM base\nCOPY same.txt /srv/same.txt\nCOPY marker.txt /srv/marker.txt\n")
    return buildkit.build(buildkit.ImageBuild(
        role="repro-test", dockerfile=context / "Dockerfile", context=context,
        reference=f"hpsforge/repro-test:{name}", source_date_epoch=0, input_sha256=f"repro-test-{name}-{marker}",
        parents=(("base", shared_images["base"]),),
    ), record=False)


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


def test_cpu_runtime_rebuilt_from_nothing_has_the_same_digest(config):
    from hpsforge.pipelines import load_pipelines

    result = repro.run(config, load_pipelines(), "cpu")
    assert result.rebuilt.digest == result.first.digest


def test_a_copy_only_server_image_is_reproducible_without_the_timestamp_rewrite(tmp_path, runtime_cpu, config):
    import shutil
    import time

    from hpsforge import bench

    shutil.copytree(bench.SAMPLE_REPOSITORY, tmp_path / "model_repository")
    (tmp_path / "Dockerfile").write_text(bench.SERVER_DOCKERFILE)
    first = bench.server_image(runtime_cpu, tmp_path, config.base.source_date_epoch, no_cache=True)
    time.sleep(1.1)  # a wall-clock timestamp leaking into a layer would now differ
    (tmp_path / "model_repository" / "add_sub" / "config.pbtxt").touch()
    second = bench.server_image(runtime_cpu, tmp_path, config.base.source_date_epoch, no_cache=True)
    assert first.digest == second.digest


def test_pipeline_images_are_reproducible(runtime_cpu, config):
    import time

    from hpsforge import pipeline_images
    from hpsforge.pipelines import load_pipelines

    pipeline = load_pipelines()["image_classification"]
    first = pipeline_images.build(config, "image_classification", pipeline, "cpu", runtime_cpu,
                                  no_cache=True, record=False)
    time.sleep(1.1)  # a wall-clock timestamp leaking into the layer would now differ
    second = pipeline_images.build(config, "image_classification", pipeline, "cpu", runtime_cpu,
                                   no_cache=True, record=False)
    assert first.digest == second.digest
