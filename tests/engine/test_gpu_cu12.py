"""The gpu-cu12 runtime and pipeline images, built for real as `nox -s images -- gpu-cu12` builds
them: ONNX Runtime 1.26.0's CUDA provider on the CUDA 12 libraries, every one from a hash-locked
PyPI wheel (no vendored tarball, no stand-in). The build proves the promised GPU architectures from
the libraries' kernels and records them; hps-gpu-check passes in the image (every library the CUDA
provider and cuDNN open resolves, ONNX Runtime lists the CUDA provider); a promise the kernels do not
keep stops the build before anything is built; every pipeline image passes the conformance suite in
CPU fallback with the CPU images' goldens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from python_on_whales import docker

from hpsforge.core.errors import ExitCode, KernelCoverageError
from hpsforge.images import runtime
from hpsforge.locks import images_lock, pip_locks, requirements_lock
from tests.support import gpu_serving
from tests.support.leave import images_leave

SITE = "/opt/hps/lib/python3.11/site-packages"


@pytest.fixture(scope="module", autouse=True)
def _gpu_cu12_images_leave_with_this_module():
    """The gpu-cu12 images serve only this module: at its end they leave the engine with their
    layouts and BuildKit's copies of their build contexts (about 15 GB a shared CI disk needs more)."""
    yield
    images_leave(lambda tag: tag.split(":")[0].endswith("-gpu-cu12"))


def _run(image: str, *command: str, entrypoint: str = "hps-gpu-check") -> str:
    return docker.run(image, list(command), entrypoint=entrypoint, remove=True, networks=["none"])


def test_hps_gpu_check_passes_and_onnx_runtime_offers_its_cuda_provider(config, runtime_gpu_cu12):
    table, facts, rows = gpu_serving.hps_gpu_check_passes(config, "gpu-cu12", runtime_gpu_cu12.reference)
    assert not any(row["standin"] for row in rows.values()), rows
    # Each library answers with its own version: the locked wheels'.
    assert rows["libcublas.so.12"]["version"] == "12.9.1" and rows["libcudnn.so.9"]["version"] == "9.10.2"
    assert rows["libcudart.so.12"]["version"] == "CUDA 12.9" and rows["libcufft.so.11"]["version"] == "11.4.1"
    assert rows["libcudnn_engines_runtime_compiled.so.9"]["file"] == f"{SITE}/nvidia/cudnn/lib/" + (
        "libcudnn_engines_runtime_compiled.so.9"
    )
    ort = facts["onnxruntime"]
    assert ort["version"] == "1.26.0" and ort["cuda_provider_error"] == ""
    assert "CUDAExecutionProvider" in ort["providers"] and "CPUExecutionProvider" in ort["providers"], ort
    assert facts["paddle"]["version"] == "3.3.1" and facts["paddle"]["cuda"] is None  # the CPU build, for LAC
    assert "GPU architectures proven at build time" in table and "GPU: none visible" in table


def test_the_runtime_is_the_committed_one_bit_for_bit(runtime_gpu_cu12):
    """Built from nothing on a fresh machine (CI), the image is the one recorded where it was
    built before: same input hash, same digest."""
    committed = images_lock.ImagesLock.read(Path(os.environ["HPSFORGE_COMMITTED_RECORD"])).images["runtime-gpu-cu12"]
    assert runtime_gpu_cu12.input_sha256 == committed.input_sha256, "the runtime's inputs changed: re-run images"
    assert runtime_gpu_cu12.digest == committed.digest


def test_the_promised_architectures_are_proven_and_labelled(config, runtime_gpu_cu12):
    promised = config.targets["gpu-cu12"].cuda.architectures
    labels = docker.image.inspect(runtime_gpu_cu12.reference).config.labels
    assert labels["io.hpsforge.cuda.architectures"] == ",".join(promised)
    assert labels["io.hpsforge.driver.minimum"] == "525.60.13"
    assert labels["io.hpsforge.cuda.version"] == "12.9" and labels["io.hpsforge.cudnn.version"] == "9.10.2.21"
    assert labels["io.hpsforge.onnxruntime.version"] == "1.26.0"
    assert "io.hpsforge.standin" not in labels
    plan = json.loads(_run(runtime_gpu_cu12.reference, "/usr/local/share/hpsforge/gpu-stack.json", entrypoint="cat"))
    assert plan["architectures"] == promised
    # ONNX Runtime's own CUDA kernels: Pascal to Hopper as SASS, Blackwell through compute_90 PTX.
    provider = plan["kernels"]["libonnxruntime_providers_cuda.so"]
    assert provider == ["sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90a", "compute_90"]
    assert {"libcublasLt.so.12", "libcudnn_cnn.so.9", "libcufft.so.11", "libcurand.so.10"} <= set(plan["kernels"])


def test_a_pipeline_whose_models_only_paddle_runs_says_it_runs_on_the_cpu(gpu_cu12_images):
    labels = docker.image.inspect(gpu_cu12_images["pipeline-lexical-analysis-gpu-cu12"].reference).config.labels
    assert labels["io.hpsforge.cpu-only-models"] == "lac"
    assert "io.hpsforge.cpu-only-models" not in (
        docker.image.inspect(gpu_cu12_images["pipeline-ocr-gpu-cu12"].reference).config.labels
    )


def test_the_image_holds_exactly_the_locked_wheels(runtime_gpu_cu12):
    listing = _run(
        runtime_gpu_cu12.reference,
        "-c",
        "import importlib.metadata as m\nfor d in m.distributions(): print(f'{d.name}=={d.version}')",
        entrypoint="/opt/hps/bin/python",
    )
    installed = {
        requirements_lock.canonical_name(name): version
        for name, version in (line.split("==") for line in listing.split())
    }
    locked = requirements_lock.read(pip_locks.lock_path("gpu-cu12")).requirements
    assert installed == {requirements_lock.canonical_name(r.name): r.version for r in locked}
    assert "onnxruntime" not in installed and "openvino" not in installed  # one ONNX Runtime: the GPU build


def test_a_promise_the_kernels_do_not_keep_stops_the_build_before_it_starts(config, shared_images, runtime_gpu_cu12):
    cuda = config.targets["gpu-cu12"].cuda.model_copy(update={"architectures": ["sm_35", "sm_90"]})
    target = config.targets["gpu-cu12"].model_copy(update={"cuda": cuda})
    broken = config.model_copy(update={"targets": {**config.targets, "gpu-cu12": target}})
    before = {image.id for image in docker.image.list("hpsforge/runtime-gpu-cu12")}
    with pytest.raises(KernelCoverageError) as caught:
        runtime.build(broken, "gpu-cu12", shared_images["base"], shared_images["rc"])
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.KERNEL_COVERAGE
    assert "its CUDA libraries have no kernels for sm_35, which targets.gpu-cu12.cuda.architectures promises" in message
    assert "libonnxruntime_providers_cuda.so (onnxruntime-gpu 1.26.0" in message  # the library and its wheel
    assert "has no kernels for sm_35: it has SASS sm_60, sm_70" in message  # what it has instead
    assert {image.id for image in docker.image.list("hpsforge/runtime-gpu-cu12")} == before, "something was tagged"


def test_without_a_gpu_the_server_says_so_in_one_line_and_serves_on_the_cpu(gpu_cu12_images):
    gpu_serving.serves_on_the_cpu_saying_why(gpu_cu12_images["pipeline-image-classification-gpu-cu12"].reference)


def test_every_gpu_cu12_pipeline_image_passes_conformance_in_cpu_fallback(gpu_cu12_images):
    """The conformance suite's golden cases, bad requests and engine checks (as `nox -s conformance --
    --target gpu -k "golden or bad_input or engines"` runs them) on the images above, with the CPU
    images' golden answers. The rest of the suite (protocol, lifecycle, concurrency) exercises the
    shared server runtime, which the cpu images run in full."""
    gpu_serving.conformance_passes_in_cpu_fallback("gpu-cu12", "golden or bad_input or engines")
