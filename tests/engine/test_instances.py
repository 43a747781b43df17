"""server.sh in a real container: the instance count and Paddle threads of each model follow the
CPUs the container is given (Docker's --cpus quota; the affinity, --cpuset-cpus, is read the same
way and checked in tests/unit/test_server_script.py) or HPS_INSTANCES and HPS_CPU_THREADS, as
Triton's own model configuration endpoint reports them."""

import json
import urllib.request

import pytest
from python_on_whales import docker

from hpsforge.bundle.client_sdk import ready
from hpsforge.core.pipelines import load_pipelines
from hpsforge.images import pipeline_images

PIPELINE, MODEL = "image_classification", "image-classification"


@pytest.fixture(scope="module")
def image(config, runtime_cpu):
    return pipeline_images.build(config, PIPELINE, load_pipelines()[PIPELINE], "cpu", runtime_cpu).reference


def _served_config(image: str, **options) -> dict:
    container = docker.run(image, detach=True, shm_size="256m", publish=[("127.0.0.1:", 8000)], **options)
    try:
        port = docker.container.inspect(container).network_settings.ports["8000/tcp"][0]["HostPort"]
        address = f"127.0.0.1:{port}"
        ready.wait_until(
            lambda: ready.http_ready(address), 240, alive=lambda: docker.container.inspect(container).state.running
        )
        with urllib.request.urlopen(f"http://{address}/v2/models/{MODEL}/config", timeout=10) as response:
            return json.loads(response.read())
    finally:
        docker.container.remove(container, force=True)


def _plan(config: dict) -> tuple[int, str]:
    (group,) = config["instance_group"]
    return group["count"], config["parameters"]["hps_cpu_threads"]["string_value"]


def _burst(config: dict) -> str | None:
    return config["parameters"].get("hps_burst_threads", {}).get("string_value")


def test_one_instance_per_cpu_the_container_may_use(image):
    cpus = int(docker.system.info().n_cpu)
    served = _served_config(image)
    assert _plan(served) == (cpus, "1")
    assert _burst(served) == (str(cpus) if cpus > 1 else None)  # a request alone may use every CPU
    one = _served_config(image, cpus=1)  # docker run --cpus 1
    assert _plan(one) == (1, "1") and _burst(one) is None


def test_instances_and_threads_can_be_given(image):
    served = _served_config(image, envs={"HPS_INSTANCES": "3", "HPS_CPU_THREADS": "2"})
    assert _plan(served) == (3, "2") and _burst(served) is None
