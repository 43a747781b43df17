"""The conformance suite against an endpoint that is already running (`nox -s conformance -- X --url`)."""

import socket

import pytest
from python_on_whales import docker

from hpsforge import conformance, pipeline_images, serve
from hpsforge.pipelines import load_pipelines

pytestmark = pytest.mark.engine

PIPELINE = "image_classification"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_suite_checks_a_running_deployment(config, runtime_cpu):
    pipeline_images.build(config, PIPELINE, load_pipelines()[PIPELINE], "cpu", runtime_cpu)
    ports = {"http": _free_port(), "grpc": _free_port(), "metrics": _free_port()}
    name = serve.container_name(PIPELINE, "cpu")
    if docker.container.exists(name):
        docker.container.remove(name, force=True)
    try:
        serve.start(PIPELINE, "cpu", "127.0.0.1", ports)
        code, results = conformance.run([PIPELINE], url=f"127.0.0.1:{ports['http']}",
                                        grpc_url=f"127.0.0.1:{ports['grpc']}",
                                        metrics_url=f"127.0.0.1:{ports['metrics']}")
    finally:
        docker.container.remove(name, force=True, volumes=True)
        if docker.volume.exists(f"{name}-state"):
            docker.volume.remove(f"{name}-state")
    assert code == 0, conformance.table(results)
    outcomes = {result["check"]: result["outcome"] for result in results}
    assert outcomes["golden_cases[client-library,grpc]"] == "passed"
    assert outcomes["bad_documents_get_a_422_envelope"] == "passed"
    table = conformance.table(results)
    assert "image_classification" in table and "PASSED" in table
