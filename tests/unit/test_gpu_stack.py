"""hpsforge.gpu: the gpu-cu118 target's CUDA stack against its lock and blobs; the blob manifest override;
stand-ins recognised; labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpsforge.core.config import ProjectConfig, load_config
from hpsforge.core.errors import HpsforgeError, StaleLockError, UsageError
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.images import gpu
from hpsforge.inputs import blobs
from hpsforge.locks import images_lock, pip_locks, requirements_lock

CONFIG_FILE = PROJECT_ROOT / "hpsforge.toml"
MANIFEST = PROJECT_ROOT / "vendor_blobs" / "manifest.toml"

ISSUE_LIBRARIES = {
    "libcublas.so",
    "libcublasLt.so",
    "libcufft.so",
    "libcurand.so",
    "libcusolver.so",
    "libcusparse.so",
    "libnccl.so",
    "libnvToolsExt.so",
    "libcudnn.so",
    "libcupti.so",
    "libnvrtc.so",
    "libcuda.so",
    "libnvinfer.so",
    "libnvinfer_plugin.so",
}
CUDNN_SUBLIBRARIES = {f"libcudnn_{part}_{kind}.so.8" for part in ("ops", "cnn", "adv") for kind in ("infer", "train")}


def _with_libraries(config: ProjectConfig, libraries: list[dict]) -> ProjectConfig:
    raw = config.model_dump(mode="json")
    raw["targets"]["gpu-cu118"]["cuda"]["libraries"] = libraries
    return ProjectConfig.model_validate(raw)


def test_the_declared_stack_covers_every_library_paddle_and_triton_open(config):
    stack = gpu.stack(config, "gpu-cu118")
    names = {library.name for library in stack.libraries}
    assert ISSUE_LIBRARIES | CUDNN_SUBLIBRARIES | {"libnvinfer_builder_resource.so.8.6.1"} <= names
    assert {"libcudart.so.12", "libcuda.so.1", "libnvidia-ml.so.1"} <= names  # Triton's
    assert stack.versions == {"cuda": "11.8", "cudnn": "8.9.7.29", "tensorrt": "8.6.1.6"}
    assert not stack.standin


def test_every_wheel_source_is_a_locked_cu11_wheel(config):
    locked = requirements_lock.read(pip_locks.lock_path("gpu-cu118")).by_name()
    stack = gpu.stack(config, "gpu-cu118")
    wheels = {library.project for library in stack.libraries if library.kind == "wheel"}
    assert wheels <= set(locked)
    cuda_wheels = wheels - {"nvidia-pytriton"}
    assert cuda_wheels and all(name.endswith("-cu11") for name in cuda_wheels)  # cu12 is the wrong family
    for library in stack.libraries:
        if library.kind == "wheel":
            assert library.provider == f"{library.project} {locked[library.project].version} (wheel)"


def test_archive_libraries_are_grouped_by_blob_with_their_image_folder(config):
    stack = gpu.stack(config, "gpu-cu118")
    by_blob = {archive.blob: archive for archive in stack.archives}
    assert set(by_blob) == set(config.targets["gpu-cu118"].blobs)
    cudnn = by_blob["cudnn-8.9.7.29-cuda11"]
    assert cudnn.into == "/opt/nvidia/cudnn/lib" and cudnn.file == "cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz"
    assert set(cudnn.libraries) == {"libcudnn.so"} | CUDNN_SUBLIBRARIES
    assert "libnvinfer_builder_resource.so.8.6.1" in by_blob["tensorrt-8.6.1.6-cuda11.8"].libraries


def test_labels_name_the_cuda_stack(config):
    assert gpu.stack(config, "gpu-cu118").labels() == {
        "io.hpsforge.cuda.version": "11.8",
        "io.hpsforge.cudnn.version": "8.9.7.29",
        "io.hpsforge.tensorrt.version": "8.6.1.6",
        "io.hpsforge.driver.minimum": "525.60.13",
    }


def test_the_cuda_12_stack_comes_from_wheels_alone(config):
    stack = gpu.stack(config, "gpu-cu12")
    assert stack.archives == [] and not stack.standin
    assert {library.kind for library in stack.libraries} == {"wheel", "driver"}
    assert all(library.project.endswith("-cu12") for library in stack.libraries if library.kind == "wheel")
    # cuDNN and ONNX Runtime come from wheels; their versions are the lock's
    assert stack.versions == {"cuda": "12.9", "cudnn": "9.10.2.21", "onnxruntime": "1.26.0"}
    assert stack.labels()["io.hpsforge.onnxruntime.version"] == "1.26.0"


def test_a_target_without_cuda_has_no_stack(config):
    assert gpu.stack(config, "cpu") is None


def test_a_source_that_is_not_locked_names_the_field_and_the_relock(config):
    broken = _with_libraries(
        config,
        [
            {"name": "libcublas.so", "source": "nvidia-cublas-cu12", "user": "Paddle"},
            {"name": "libcudnn.so", "source": "cudnn-8.9.7.29-cuda11", "user": "Paddle"},
            {"name": "libnvinfer.so", "source": "tensorrt-8.6.1.6-cuda11.8", "user": "Paddle"},
        ],
    )
    with pytest.raises(StaleLockError) as caught:
        gpu.stack(broken, "gpu-cu118")
    message = str(caught.value)
    assert "targets.gpu-cu118.cuda.libraries.0 (libcublas.so)" in message and "nvidia-cublas-cu12" in message
    assert "nox -s freeze -- gpu-cu118" in message


def test_a_blob_of_another_target_is_refused(config):
    broken = _with_libraries(config, [{"name": "libcudnn.so", "source": "cudnn-8.9.7.29-cuda12", "user": "Paddle"}])
    with pytest.raises(
        UsageError, match="cudnn-8.9.7.29-cuda12 is a vendor blob, but not one of targets.gpu-cu118.blobs"
    ):
        gpu.stack(broken, "gpu-cu118")


def test_a_blob_nothing_is_taken_from_is_refused(config):
    broken = _with_libraries(config, [{"name": "libcudnn.so", "source": "cudnn-8.9.7.29-cuda11", "user": "Paddle"}])
    with pytest.raises(UsageError, match="takes nothing from blob tensorrt-8.6.1.6-cuda11.8"):
        gpu.stack(broken, "gpu-cu118")


@pytest.mark.parametrize(
    "library, reason",
    [
        ({"name": "cublas.dll", "source": "nvidia-cublas-cu11", "user": "Paddle"}, "is not well-formed"),
        ({"name": "libcublas.so", "source": "", "user": "Paddle"}, "at least 1 character"),
        ({"name": "libcublas.so", "source": "nvidia-cublas-cu11"}, "Field required"),
    ],
)
def test_library_declarations_are_validated(tmp_path, library, reason):
    line = '{ name = "libcublas.so", source = "nvidia-cublas-cu11", user = "Paddle" }'
    written = "{ " + ", ".join(f'{key} = "{value}"' for key, value in library.items()) + " }"
    path = tmp_path / "hpsforge.toml"
    path.write_text(CONFIG_FILE.read_text().replace(line, written))
    with pytest.raises(HpsforgeError, match=reason) as caught:
        load_config(path)
    assert "targets.gpu-cu118.cuda.libraries.0" in str(caught.value)


def test_a_library_declared_twice_is_refused(tmp_path):
    line = '{ name = "libcublas.so", source = "nvidia-cublas-cu11", user = "Paddle" },'
    path = tmp_path / "hpsforge.toml"
    path.write_text(CONFIG_FILE.read_text().replace(line, line + "\n    " + line))
    with pytest.raises(HpsforgeError, match="declared twice: libcublas.so"):
        load_config(path)


def _standin_manifest(tmp_path: Path) -> Path:
    real = blobs.load_manifest(MANIFEST)
    text = ""
    for name in ("cudnn-8.9.7.29-cuda11", "tensorrt-8.6.1.6-cuda11.8"):
        blob = real.get(name)
        text += (
            f'[[blobs]]\nname = "{blob.name}"\nfile = "{blob.file}"\nsha256 = "{"0" * 64}"\n'
            f'url = "file:///nowhere"\nlicense = "none"\ntargets = ["gpu-cu118"]\ncomponent = "{blob.component}"\n'
            f'version = "{blob.version}"\nstandin = true\n\n'
        )
    path = tmp_path / "standin-manifest.toml"
    path.write_text(text)
    return path


def test_the_blob_manifest_is_read_from_the_environment_at_call_time(tmp_path, monkeypatch, config):
    assert blobs.load_manifest().path == MANIFEST
    monkeypatch.setenv("HPSFORGE_BLOB_MANIFEST", str(_standin_manifest(tmp_path)))
    manifest = blobs.load_manifest()
    assert manifest.path == tmp_path / "standin-manifest.toml"
    assert manifest.get("cudnn-8.9.7.29-cuda11").standin
    stack = gpu.stack(config, "gpu-cu118")
    assert stack.standin and all(archive.standin for archive in stack.archives)
    assert gpu.standin_blobs(config, "gpu-cu118") == ["cudnn-8.9.7.29-cuda11", "tensorrt-8.6.1.6-cuda11.8"]
    assert stack.labels()[gpu.STANDIN_LABEL].startswith("true: cuDNN and TensorRT are generated test stand-ins")


def test_the_real_manifest_declares_no_stand_ins():
    assert not any(blob.standin for blob in blobs.load_manifest(MANIFEST).blobs)


def test_stand_in_references_are_recognised():
    assert gpu.is_standin_reference("hpsforge/runtime-gpu:03d3c532acea-standin")
    assert gpu.is_standin_reference("hpsforge/ocr-gpu:f2003866c652-standin")
    assert not gpu.is_standin_reference("hpsforge/runtime-gpu:03d3c532acea")
    assert not gpu.is_standin_reference("registry:5000/hpsforge-standin/runtime-gpu:v1")


def test_stand_in_images_are_never_named_or_pushed():
    from hpsforge.images import runtime
    from hpsforge.ship import registry

    image = images_lock.ImageRecord(
        reference="hpsforge/runtime-gpu:03d3c532acea-standin", digest="sha256:" + "1" * 64, input_sha256="2" * 64
    )
    with pytest.raises(UsageError, match="never pushed like a release"):
        registry.push(image, "127.0.0.1:5000/hps")
    with pytest.raises(UsageError, match="never named like a release"):
        runtime.name("gpu-cu118", image, "registry:5000/hps/runtime-gpu", "v1")


def test_the_gpu_plan_is_deterministic(config):
    assert gpu.stack(config, "gpu-cu118").canonical_json() == gpu.stack(load_config(), "gpu-cu118").canonical_json()


def test_the_sbom_records_the_cuda_stack(config):
    from hpsforge.core.pipelines import load_pipelines
    from hpsforge.prove import sbom

    document = sbom.document(config, load_pipelines(), "gpu-cu118")
    properties = {p["name"]: p["value"] for p in document["metadata"]["component"]["properties"]}
    assert properties == gpu.stack(config, "gpu-cu118").labels()
    versions = {c["name"]: c["version"] for c in document["components"] if c["bom-ref"].startswith("blob:")}
    assert versions == {
        "cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz": "8.9.7.29",
        "TensorRT-8.6.1.6.Linux.x86_64-gnu.cuda-11.8.tar.gz": "8.6.1.6",
    }
    assert "properties" not in sbom.document(config, load_pipelines(), "cpu")["metadata"]["component"]


def test_models_no_gpu_engine_runs_are_named_per_target(config):
    from hpsforge.core.pipelines import load_pipelines

    pipelines = load_pipelines()
    # gpu-cu12: ONNX Runtime's GPU build, Paddle's CPU build: Paddle-only LAC (and dlib) stay on the CPU
    assert gpu.cpu_only_models(config, "gpu-cu12", pipelines["lexical_analysis"]) == ["lac"]
    assert gpu.cpu_only_models(config, "gpu-cu12", pipelines["OCR"]) == []
    # gpu-cu118: Paddle's CUDA build runs every Paddle model; cpu: no GPU to speak of
    assert gpu.cpu_only_models(config, "gpu-cu118", pipelines["lexical_analysis"]) == []
    assert gpu.cpu_only_models(config, "cpu", pipelines["lexical_analysis"]) == []
