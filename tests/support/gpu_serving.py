"""What every GPU image must do on this GPU-less machine: serve on the CPU, say so, and answer as the
cpu images do. Shared by the gpu-cu12 and gpu-cu118 test modules."""

from __future__ import annotations

import time

from python_on_whales import docker

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
