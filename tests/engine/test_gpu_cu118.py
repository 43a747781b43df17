"""The gpu-cu118 runtime and pipeline images, built as `nox -s images -- gpu-cu118` builds them, on STAND-INS
for NVIDIA's cuDNN and TensorRT tarballs (tests/support/gpu_standins.py) with the real cu11 wheels,
Paddle 2.6.2 and Triton: hps-gpu-check passes in the image, only the shared libraries a server
needs are in it, the labels name the CUDA stack, a broken tarball stops the build naming the
library and the archive, and every gpu-cu118 pipeline image passes the conformance suite in CPU fallback."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from python_on_whales import docker

from hpsforge.core.errors import HpsforgeError
from hpsforge.images import gpu, runtime
from hpsforge.locks import images_lock, pip_locks, requirements_lock
from tests.support import gpu_serving
from tests.support.leave import images_leave

SITE = "/opt/hps/lib/python3.11/site-packages"


@pytest.fixture(scope="module", autouse=True)
def _gpu_images_leave_with_this_module():
    """The gpu-cu118 images serve only this module (tests/conftest.py's runtime_gpu_cu118 and gpu_cu118_images): at its
    end they leave the engine, with their layouts and BuildKit's copies of their build contexts,
    about 12 GB that the rest of a run on a shared CI disk needs more."""
    yield
    images_leave(lambda tag: tag.startswith("hpsforge/") and gpu.is_standin_reference(tag))


def _run(image: str, *command: str, entrypoint: str = "hps-gpu-check", **kwargs) -> str:
    return docker.run(image, list(command), entrypoint=entrypoint, remove=True, networks=["none"], **kwargs)


def test_hps_gpu_check_passes_on_the_stand_in_image(config, runtime_gpu_cu118):
    table, facts, rows = gpu_serving.hps_gpu_check_passes(config, "gpu-cu118", runtime_gpu_cu118.reference)
    for name, row in rows.items():
        assert row["standin"] == (row["kind"] == "archive"), name  # only cuDNN and TensorRT are stand-ins
    # The real wheels answer with their own versions; Triton's cudart is 12.6.
    assert rows["libcublas.so"]["version"] == "11.11.3" and rows["libcusparse.so"]["version"] == "11.7.5"
    assert rows["libnccl.so"]["version"] == "2.21.5" and rows["libnvrtc.so"]["version"] == "11.8"
    assert rows["libcudart.so.12"]["version"] == "CUDA 12.6"
    assert rows["libcudnn.so"]["version"] == "8.9.7" and rows["libnvinfer.so"]["version"] == "8.6.1"
    assert rows["libcublas.so"]["file"] == f"{SITE}/nvidia/cublas/lib/libcublas.so.11"
    assert rows["libcudnn_cnn_infer.so.8"]["file"] == "/opt/nvidia/cudnn/lib/libcudnn_cnn_infer.so.8.9.7"
    # Paddle's kernels, read from its own binaries: Pascal (6.1) to Ampere (8.6), no Hopper.
    assert facts["paddle"]["version"] == "2.6.2" and facts["paddle"]["cuda"] == "11.8"
    assert facts["paddle"]["kernels"]["sm"] == [61, 70, 75, 80, 86] and facts["paddle"]["kernels"]["ptx"] == []
    assert "STAND-IN cuDNN/TensorRT: not a release" in table and "GPU: none visible" in table


def test_labels_tag_and_record_say_stand_in(runtime_gpu_cu118, gpu_cu118_images):
    labels = docker.image.inspect(runtime_gpu_cu118.reference).config.labels
    assert labels["io.hpsforge.cuda.version"] == "11.8"
    assert labels["io.hpsforge.cudnn.version"] == "8.9.7.29"
    assert labels["io.hpsforge.tensorrt.version"] == "8.6.1.6"
    assert labels[gpu.STANDIN_LABEL].startswith("true") and "STAND-IN" in labels["org.opencontainers.image.title"]
    recorded = images_lock.ImagesLock.read().images
    for role, image in gpu_cu118_images.items():
        assert image.reference.endswith(gpu.STANDIN_SUFFIX), image.reference
        assert docker.image.inspect(image.reference).config.labels[gpu.STANDIN_LABEL].startswith("true")
        assert role not in recorded or recorded[role].digest != image.digest, f"{role} was recorded"


def test_the_image_holds_the_locked_wheels_and_only_the_libraries_a_server_needs(config, runtime_gpu_cu118):
    listing = _run(
        runtime_gpu_cu118.reference,
        "-c",
        f"""
import importlib.metadata as m, json, os, glob
print(json.dumps({{
  "installed": sorted(f"{{d.name}}=={{d.version}}" for d in m.distributions()),
  "nvidia": sorted(os.path.relpath(p, "/opt/nvidia") for p in glob.glob("/opt/nvidia/**", recursive=True)),
  "wheel_files": sorted(os.path.relpath(p, "{SITE}") for p in glob.glob("{SITE}/nvidia/**", recursive=True)),
  "ld_conf": open("/etc/ld.so.conf.d/hpsforge-gpu.conf").read().split(),
}}))""",
        entrypoint="/opt/hps/bin/python",
    )
    found = json.loads(listing)
    locked = {
        requirements_lock.canonical_name(r.name): r.version
        for r in requirements_lock.read(pip_locks.lock_path("gpu-cu118")).requirements
    }
    installed = dict(line.split("==") for line in found["installed"])
    assert {requirements_lock.canonical_name(name): version for name, version in installed.items()} == locked
    kept = {path.rsplit("/", 1)[-1] for path in found["nvidia"] if "/lib/" in path}
    assert kept == {
        *(
            f"libcudnn{part}.so{suffix}"
            for part in ("", "_ops_infer", "_ops_train", "_cnn_infer", "_cnn_train", "_adv_infer", "_adv_train")
            for suffix in (".8", ".8.9.7")
        ),
        "libcudnn.so",
        "libnvinfer.so",
        "libnvinfer.so.8",
        "libnvinfer.so.8.6.1",
        "libnvinfer_plugin.so",
        "libnvinfer_plugin.so.8",
        "libnvinfer_plugin.so.8.6.1",
        "libnvinfer_builder_resource.so.8.6.1",
    }
    assert all(path.split("/")[1:2] in (["lib"], []) for path in found["nvidia"]), found["nvidia"]  # no include/, docs
    assert not [path for path in found["wheel_files"] if "/include" in path or path.endswith(".a")]
    for unused in config.targets["gpu-cu118"].cuda.unused:
        assert unused not in found["wheel_files"]
    assert "/opt/nvidia/cudnn/lib" in found["ld_conf"] and f"{SITE}/nvidia/cublas/lib" in found["ld_conf"]
    assert f"{SITE}/nvidia_pytriton.libs" not in found["ld_conf"]  # Triton's private copies stay private
    env = dict(item.split("=", 1) for item in docker.image.inspect(runtime_gpu_cu118.reference).config.env)
    assert env["NVIDIA_REQUIRE_CUDA"] == "cuda>=12.0" and env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"


def test_paddle_2_6_2_runs_paddle_inference_on_the_cpu(runtime_gpu_cu118):
    assert "max difference from numpy 0.0e+00" in _run(runtime_gpu_cu118.reference, "--inference", "cpu")


def test_hps_device_gpu_without_a_gpu_is_a_clear_exit(gpu_cu118_images):
    image = gpu_cu118_images["pipeline-image-classification-gpu-cu118"].reference
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "run", "--rm", "--network=none", "-e", "HPS_DEVICE=gpu", image],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and time.monotonic() - started < 30, result.stderr
    assert "HPS_DEVICE=gpu, but no usable NVIDIA GPU is visible" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stdout == "", result.stderr  # Triton never started


def test_auto_without_a_gpu_says_it_falls_back_to_the_cpu(gpu_cu118_images):
    gpu_serving.serves_on_the_cpu_saying_why(gpu_cu118_images["pipeline-image-classification-gpu-cu118"].reference)


def _build_broken(config, shared_images, tmp_path, **broken) -> str:
    from tests.support import gpu_standins

    standins = gpu_standins.make(tmp_path, config, **{key: frozenset(value) for key, value in broken.items()})
    before = {image.id for image in docker.image.list("hpsforge/runtime-gpu-cu118")}
    with standins.active(), pytest.raises(HpsforgeError) as caught:
        runtime.build(config, "gpu-cu118", shared_images["base"], shared_images["rc"])
    assert {image.id for image in docker.image.list("hpsforge/runtime-gpu-cu118")} == before, "something was tagged"
    return str(caught.value)


def test_a_tarball_lacking_a_library_stops_the_build_naming_the_library_and_the_archive(
    config, shared_images, runtime_gpu_cu118, tmp_path
):
    message = _build_broken(config, shared_images, tmp_path, omit={"libcudnn_adv_train.so.8"})
    assert "nothing was tagged or recorded" in message
    assert (
        "install-gpu-libraries: error: libcudnn_adv_train.so.8 is not in "
        "cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz (vendor blob cudnn-8.9.7.29-cuda11)"
    ) in message


def test_a_library_that_does_not_load_fails_the_build_in_hps_gpu_check(
    config, shared_images, runtime_gpu_cu118, tmp_path
):
    message = _build_broken(config, shared_images, tmp_path, unloadable={"libnvinfer_plugin.so"})
    assert (
        "hps-gpu-check: error: libnvinfer_plugin.so (opened by Paddle) does not load: "
        "libhpsforge-not-there.so.1: cannot open shared object file" in message
    )
    assert (
        "it comes from TensorRT-8.6.1.6.Linux.x86_64-gnu.cuda-11.8.tar.gz (vendor blob tensorrt-8.6.1.6-cuda11.8)"
        in message
    )


def test_every_gpu_pipeline_image_gives_the_golden_answers_in_cpu_fallback(gpu_cu118_images, gpu_standins):
    """The conformance suite's golden cases (`nox -s conformance -- --target gpu-cu118 -k golden`) on the
    images above, with Paddle 2.6.2, every protocol and client. Bad input runs on the gpu-cu12 images
    too, the rest of the suite (protocol, lifecycle) on the cpu images, whose server code is the same."""
    with gpu_standins.active():  # the suite's own run builds (finds up to date) the same images
        gpu_serving.conformance_passes_in_cpu_fallback("gpu-cu118", "golden")
