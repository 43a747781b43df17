"""What every GPU image must do on this GPU-less machine: serve on the CPU, say so, and answer as the
cpu images do. Shared by the gpu-cu12 and gpu-cu118 test modules."""

from __future__ import annotations

import json
import time

from python_on_whales import docker

from hpsforge.core.config import ProjectConfig
from hpsforge.core.pipelines import load_pipelines
from hpsforge.prove import conformance


def conformance_passes_in_cpu_fallback(target: str, selection: str) -> None:
    """`nox -s conformance -- --target TARGET -k SELECTION` passes, with every pipeline's goldens among it."""
    checked = conformance.run([], target=target, extra=("-k", selection))
    print("\n" + conformance.table(checked.results))
    assert checked.passed, conformance.table(checked.results)
    golden = {
        result.pipeline
        for result in checked.results
        if result.check.startswith("golden") and result.outcome is conformance.Outcome.PASSED
    }
    assert golden == set(load_pipelines()), golden


def serves_on_the_cpu_saying_why(image: str, timeout_s: float = 90) -> None:
    """Started with HPS_DEVICE=auto (the default) and no GPU, the server names the reason in one
    line and loads the CPU model configs."""
    container = docker.run(image, detach=True, networks=["none"], envs={"HPS_ADMIN_KEY": "a" * 20})
    try:
        deadline = time.monotonic() + timeout_s
        while "serving /opt/hps/server/model_repo on" not in (log := docker.container.logs(container)):
            assert time.monotonic() < deadline, log
            time.sleep(0.5)
        fallback = [line for line in log.splitlines() if "falling back to the CPU model configs" in line]
        assert len(fallback) == 1 and "no usable NVIDIA GPU is visible" in fallback[0], log
        assert "model_repo on cpu" in log
    finally:
        docker.container.remove(container, force=True)


def hps_gpu_check_passes(config: ProjectConfig, target: str, image: str) -> tuple[str, dict, dict[str, dict]]:
    """`hps-gpu-check` in the image finds no problem and no GPU, and every declared library but the
    driver's resolves; (its table, its --json facts, the facts' library rows by name)."""
    table, facts = _check(image), json.loads(_check(image, "--json"))
    print(f"\n{table}")  # the table, for the record (pytest -s)
    assert facts["problems"] == [] and facts["devices"] == [] and "--gpus" in facts["no_gpu_reason"]
    rows = {row["name"]: row for row in facts["libraries"]}
    cuda = config.target(target).cuda
    assert cuda is not None and set(rows) == {library.name for library in cuda.libraries}
    for name, row in rows.items():
        assert row["ok"] == (row["kind"] != "driver"), f"{name}: {row['error'] or 'a driver library in the image'}"
    return table, facts, rows


def _check(image: str, *arguments: str) -> str:
    return docker.run(image, list(arguments), entrypoint="hps-gpu-check", remove=True, networks=["none"])
