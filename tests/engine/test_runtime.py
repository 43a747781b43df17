"""The cpu runtime image: real Triton with the python backend, answering over HTTP and gRPC."""

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from python_on_whales import docker
from testcontainers.core.container import DockerContainer

MODEL_REPOSITORY = Path(__file__).resolve().parents[1] / "assets" / "model_repository"
READY_TIMEOUT_S = 180
# Paddle Inference alone fitted 1.5 GB; ONNX Runtime (68 MB installed) and OpenVINO (180 MB) beside
# it make 1.716 GB (measured 2026-12-06), so three engines get 1.75 GB.
SIZE_LIMIT = 1.75e9


@pytest.fixture(scope="module")
def triton(runtime_cpu):
    """The runtime serving tests/assets/model_repository, ready before the tests start."""
    container = (
        DockerContainer(runtime_cpu.reference)
        .with_volume_mapping(str(MODEL_REPOSITORY), "/models", "ro")
        .with_exposed_ports(8000, 8001)
    )
    container.start()
    try:
        host = container.get_container_host_ip()
        http_url = f"{host}:{container.get_exposed_port(8000)}"
        grpc_url = f"{host}:{container.get_exposed_port(8001)}"
        _wait_ready(container, http_url)
        yield http_url, grpc_url
    finally:
        container.stop()


def _wait_ready(container, http_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    stdout, stderr = container.get_logs()
    pytest.fail(f"Triton never became ready; its log:\n{(stdout + stderr).decode(errors='replace')[-5000:]}")


INPUT0 = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
INPUT1 = np.array([0.5, 0.25, -1.0, 10.0], dtype=np.float32)


def test_http_inference(triton):
    client = httpclient.InferenceServerClient(url=triton[0])
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(INPUT0)
    inputs[1].set_data_from_numpy(INPUT1)
    result = client.infer("add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), INPUT0 + INPUT1)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), INPUT0 - INPUT1)


def test_grpc_inference(triton):
    client = grpcclient.InferenceServerClient(url=triton[1])
    assert client.is_model_ready("add_sub")
    inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(INPUT0)
    inputs[1].set_data_from_numpy(INPUT1)
    result = client.infer("add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), INPUT0 + INPUT1)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), INPUT0 - INPUT1)


def test_runtime_runs_as_non_root_with_tini_and_a_healthcheck(runtime_cpu):
    image = docker.image.inspect(runtime_cpu.reference)
    assert image.config.user == "1000:1000"
    assert image.config.entrypoint[0] == "/usr/bin/tini"
    assert "/v2/health/ready" in " ".join(image.config.healthcheck.test)
    assert image.config.labels["io.hpsforge.target"] == "cpu"
    assert image.config.labels["io.hpsforge.inputs-sha256"] == runtime_cpu.input_sha256
    uid = docker.run(runtime_cpu.reference, ["-c", "import os; print(os.getuid())"], entrypoint="python3", remove=True)
    assert uid.strip() == "1000"


def test_runtime_holds_exactly_the_locked_wheels(runtime_cpu):
    from hpsforge.locks import pip_locks, requirements_lock

    locked = {
        requirements_lock.canonical_name(r.name): r.version
        for r in requirements_lock.read(pip_locks.lock_path("cpu")).requirements
    }
    listing = docker.run(
        runtime_cpu.reference,
        [
            "-c",
            "import importlib.metadata as m; print(*(f'{d.name}=={d.version}' for d in m.distributions()))",
        ],
        entrypoint="/opt/hps/bin/python",
        remove=True,
    )
    installed = dict(line.split("==") for line in listing.split())
    installed = {requirements_lock.canonical_name(name): version for name, version in installed.items()}
    assert installed == locked


def test_runtime_is_at_most_1_75_gb(runtime_cpu):
    from hpsforge.images import sizes

    size = sizes.unpacked_size(runtime_cpu)
    print(f"cpu runtime: {size / 1e9:.3f} GB unpacked")
    assert size <= SIZE_LIMIT


def test_push_to_an_unreachable_registry_fails_clearly_and_keeps_the_build(cpu_images, tmp_path):
    import shutil
    import subprocess

    from hpsforge.locks.images_lock import ImagesLock, images_lock_path

    root = Path(__file__).resolve().parents[2]
    record = tmp_path / "images.lock.json"
    shutil.copyfile(images_lock_path(), record)
    result = subprocess.run(
        [str(root / "noxw"), "-s", "images", "--", "cpu", "--push", "127.0.0.1:9/hps"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**__import__("os").environ, "HPSFORGE_IMAGES_RECORD": str(record)},
    )
    output = result.stdout + result.stderr
    runtime = cpu_images["runtime-cpu"]
    tag = runtime.reference.rpartition(":")[2]
    assert result.returncode == 4, output
    assert f"push of {runtime.reference} to 127.0.0.1:9/hps/runtime-cpu:{tag} failed" in output
    assert f"the image is built and recorded locally ({runtime.digest})" in output
    assert ImagesLock.read(record).images["runtime-cpu"].digest == runtime.digest  # recorded before the push
    assert ImagesLock.read(record).images["runtime-cpu"].pushed is None
    docker.image.remove(f"127.0.0.1:9/hps/runtime-cpu:{tag}", force=True)
