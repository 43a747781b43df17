"""The CUDA stack of a GPU runtime, from its declaration ([targets.<t>.cuda] in hpsforge.toml).

Every library Paddle and Triton open is declared with the locked input it comes from: a wheel of
the target's pip lock, one of the target's vendor blobs, or the host's driver. `stack` checks the
declaration against the lock and the blob manifest and gives the plan the image build follows
(dockerfiles/gpu/install-gpu-libraries: unversioned links into the wheels, only the declared
files out of the archives, the loader path) and `hps-gpu-check` checks in the image. The
versions it records (CUDA, cuDNN, TensorRT) become the image's labels and SBOM properties.

Stand-ins: a blob manifest whose blobs are marked `standin = true` (the test suite's, through
$HPSFORGE_BLOB_MANIFEST) builds images tagged `<hash>-standin`, labelled as stand-ins, never
recorded in lock/images.lock.json and never named or pushed as a release.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import StaleLockError, UsageError
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.settings import settings
from hpsforge.images import kernels
from hpsforge.inputs import blobs
from hpsforge.locks import pip_locks, requirements_lock

SPEC_NAME = "gpu-stack.json"
# Where archives are unpacked in the image.
ARCHIVES_IN_IMAGE = PurePosixPath("/opt/nvidia")
DRIVER = "driver"
STANDIN_SUFFIX = "-standin"
STANDIN_LABEL = "io.hpsforge.standin"
LABEL_PREFIX = "io.hpsforge."
# Components a label names when a wheel of the lock, not a vendor blob, provides them.
WHEEL_COMPONENTS = {"cudnn": re.compile(r"^nvidia-cudnn-cu[0-9]+$"), "onnxruntime": re.compile(r"^onnxruntime-gpu$")}


def scripts() -> tuple[Path, Path]:
    """dockerfiles/gpu/install-gpu-libraries (build time) and hps-gpu-check (in the image)."""
    folder = settings().dockerfiles / "gpu"
    return folder / "install-gpu-libraries", folder / "hps-gpu-check"


class Library(BaseModel):
    name: str
    user: str
    kind: str  # wheel, archive, driver
    provider: str  # what to name in a message: "nvidia-cublas-cu11 11.11.3.6 (wheel)", an archive file
    project: str | None = None  # wheel: its canonical project name
    blob: str | None = None  # archive: the blob name
    file: str | None = None  # archive: the tarball's file name
    into: str | None = None  # archive: the image folder its files go to


class Archive(BaseModel):
    blob: str
    file: str
    component: str
    version: str
    into: str
    standin: bool
    libraries: list[str]


class GpuStack(BaseModel):
    """The plan of a GPU runtime's CUDA stack (written into the image as gpu-stack.json)."""

    target: str
    versions: dict[str, str]  # cuda, cudnn, tensorrt
    standin: bool
    libraries: list[Library]
    archives: list[Archive]
    unused: list[str]
    driver: str  # the oldest driver the image runs on
    # Proven at build time (images/kernels.py), when the target promises architectures: the promised
    # ones, and each CUDA library's SASS/PTX codes (hps-gpu-check matches a device against them).
    architectures: list[str] = []
    kernels: dict[str, list[str]] = {}

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"

    def labels(self) -> dict[str, str]:
        """The OCI labels that say which CUDA stack the image carries (and whether it is a stand-in)."""
        labels = {f"{LABEL_PREFIX}{component}.version": version for component, version in self.versions.items()}
        labels[f"{LABEL_PREFIX}driver.minimum"] = self.driver
        if self.architectures:
            labels[f"{LABEL_PREFIX}cuda.architectures"] = ",".join(self.architectures)
        if self.standin:
            labels[STANDIN_LABEL] = (
                "true: cuDNN and TensorRT are generated test stand-ins, not NVIDIA's "
                "libraries; this image cannot run on a GPU and is never a release"
            )
        return labels


def stack(
    config: ProjectConfig, target: str, manifest: blobs.BlobManifest | None = None, lock_path: Path | None = None
) -> GpuStack | None:
    """The target's CUDA stack, checked against its lock and blobs; None for a target without one."""
    target_config = config.target(target)
    cuda = target_config.cuda
    if cuda is None:
        return None
    manifest = blobs.load_manifest() if manifest is None else manifest
    lock_path = lock_path or pip_locks.lock_path(target)
    locked = requirements_lock.read(lock_path).by_name()
    field = f"targets.{target}.cuda.libraries"
    archives: dict[str, Archive] = {}
    for name in target_config.blobs:
        blob = manifest.get(name)
        if blob.component is None or blob.version is None:
            raise UsageError(
                f"{manifest.path}: blob {name} needs `component` and `version` "
                f"(the {target} image's labels and SBOM record them)"
            )
        archives[name] = Archive(
            blob=name,
            file=blob.file,
            component=blob.component,
            version=blob.version,
            into=str(ARCHIVES_IN_IMAGE / blob.component / "lib"),
            standin=blob.standin,
            libraries=[],
        )
    libraries = []
    for index, declared in enumerate(cuda.libraries):
        where = f"{settings().config_file}: {field}.{index} ({declared.name})"
        project = requirements_lock.canonical_name(declared.source)
        if declared.source == DRIVER:
            libraries.append(
                Library(
                    name=declared.name,
                    user=declared.user,
                    kind="driver",
                    provider="the host's NVIDIA driver (mounted by the NVIDIA container toolkit)",
                )
            )
        elif declared.source in archives:
            archive = archives[declared.source]
            archive.libraries.append(declared.name)
            libraries.append(
                Library(
                    name=declared.name,
                    user=declared.user,
                    kind="archive",
                    provider=f"{archive.file} (vendor blob {archive.blob})",
                    blob=archive.blob,
                    file=archive.file,
                    into=archive.into,
                )
            )
        elif project in locked:
            requirement = locked[project]
            libraries.append(
                Library(
                    name=declared.name,
                    user=declared.user,
                    kind="wheel",
                    project=project,
                    provider=f"{project} {requirement.version} (wheel)",
                )
            )
        elif declared.source in {blob.name for blob in manifest.blobs}:
            raise UsageError(
                f"{where}: source {declared.source} is a vendor blob, but not one of "
                f"targets.{target}.blobs ({', '.join(target_config.blobs) or 'none'})"
            )
        else:
            raise StaleLockError(
                f"{where}: source {declared.source!r} is neither `{DRIVER}`, a blob of targets.{target}.blobs "
                f"({', '.join(target_config.blobs) or 'none'}) nor a wheel of {lock_path}",
                hint=f"fix the source, or add the wheel to targets.{target}.requirements and re-lock with "
                f"`{pip_locks.refresh_command(target)}`",
            )
    for archive in archives.values():
        if not archive.libraries:
            raise UsageError(
                f"{settings().config_file}: {field} takes nothing from blob {archive.blob}; "
                f"declare the libraries it provides, or drop it from targets.{target}.blobs"
            )
    versions = {"cuda": cuda.version, **{archive.component: archive.version for archive in archives.values()}}
    for component, wheel in WHEEL_COMPONENTS.items():  # cuDNN from a wheel rather than a blob
        versions.update((component, locked[project].version) for project in locked if wheel.match(project))
    return GpuStack(
        target=target,
        versions=versions,
        standin=any(a.standin for a in archives.values()),
        libraries=libraries,
        archives=list(archives.values()),
        unused=list(cuda.unused),
        driver=cuda.driver,
    )


# The locked packages whose engine runs on a GPU (their CPU builds do not).
GPU_BUILDS = {"paddle": "paddlepaddle-gpu", "onnxruntime": "onnxruntime-gpu"}
CPU_ONLY_LABEL = f"{LABEL_PREFIX}cpu-only-models"


def cpu_only_models(config: ProjectConfig, target: str, pipeline: Pipeline) -> list[str]:
    """The pipeline's models that run on the CPU even on a GPU instance of the target: none of the
    engines they declare has its GPU build in the target's lock (LAC, Paddle-only, on gpu-cu12)."""
    if config.target(target).cuda is None:
        return []
    locked = requirements_lock.read(pip_locks.lock_path(target)).by_name()
    on_gpu = {engine for engine, package in GPU_BUILDS.items() if package in locked}
    return sorted(model.name for model in pipeline.models if not on_gpu.intersection(model.engines))


def with_kernels(stack: GpuStack, coverage: kernels.Coverage) -> GpuStack:
    """The plan with the architectures the build proved and each CUDA library's kernels (by file
    name), which hps-gpu-check matches a device against."""
    return stack.model_copy(
        update={
            "architectures": coverage.proven(),
            "kernels": {library.name: library.kernels() for library in coverage.checked()},
        }
    )


def standin_blobs(config: ProjectConfig, target: str, manifest: blobs.BlobManifest | None = None) -> list[str]:
    """The target's blobs that the manifest in use declares as generated stand-ins."""
    manifest = blobs.load_manifest() if manifest is None else manifest
    return [name for name in config.target(target).blobs if manifest.get(name).standin]


def is_standin_reference(reference: str) -> bool:
    return reference.rpartition(":")[2].endswith(STANDIN_SUFFIX)
