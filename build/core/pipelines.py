"""Pipeline declarations (pipelines/<Name>/pipeline.toml): requirements, locked model artifacts,
test fixtures and the settings its server reads."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, model_validator

from hpsforge.core.config import (
    Model,
    PinnedRequirement,
    PipRequirement,
    Sha256Hex,
    read_toml,
    validate_toml,
)
from hpsforge.core.errors import UsageError
from hpsforge.core.settings import settings


class ModelSource(Model):
    """Where a model's files come from: one file of a locked PyPI release, a URL, a vendor blob, or
    a local folder (`nox -s new-pipeline`): then each file is its own locked input, its size in
    `sizes` and its sha256 in the artifact's `files`, kept in the content store by that sha256 and
    taken again from the folder (or an input archive) when the store lacks it."""

    pypi: PinnedRequirement | None = None
    file: str | None = None
    url: str | None = None
    sha256: Sha256Hex | None = None
    blob: str | None = None
    local: str | None = None  # an absolute folder
    sizes: dict[str, int] | None = None  # file -> bytes, with `local`

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSource:
        names = ("pypi", "file", "url", "sha256", "blob", "local", "sizes")
        given = {name for name in names if getattr(self, name) is not None}
        if given not in ({"pypi", "file"}, {"url", "sha256"}, {"blob"}, {"local", "sizes"}):
            raise ValueError("give exactly one of: pypi + file, url + sha256, blob, local + sizes")
        if self.local is not None and not PurePosixPath(self.local).is_absolute():
            raise ValueError(f"local {self.local!r} is not an absolute folder")
        return self

    def describe(self) -> str:
        if self.pypi:
            return f"{self.file} of {self.pypi}"
        if self.local:
            return f"the local folder {self.local}"
        return self.url or f"vendor blob {self.blob}"


class ModelArtifact(Model):
    """One model a pipeline serves: its source archive and the sha256 of every file taken from it.

    The files are served flattened, as models/<name>/<basename>, so basenames must not repeat.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: ModelSource
    files: dict[str, Sha256Hex] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_basenames(self) -> ModelArtifact:
        seen: dict[str, str] = {}
        for path in self.files:
            basename = PurePosixPath(path).name
            if basename in ("", ".", "..") or basename in seen:
                raise ValueError(
                    f"{path}: basename {basename!r} is not unique in the artifact "
                    f"(files are served as models/{self.name}/<basename>)"
                )
            seen[basename] = path
        if self.source.sizes is not None and set(self.source.sizes) != set(self.files):
            raise ValueError("source.sizes must name exactly the files of `files` (one size per file)")
        return self

    def served_files(self) -> dict[str, tuple[str, str]]:
        """basename -> (member path in the source archive, sha256)."""
        return {PurePosixPath(path).name: (path, sha256) for path, sha256 in sorted(self.files.items())}


class StateVolume(Model):
    """A PersistentVolumeClaim the pipeline keeps its state on (HPS_STATE_DIR: the face index)."""

    size: str = Field("1Gi", pattern=r"^[1-9][0-9]*(Mi|Gi|Ti)$")
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = "ReadWriteOnce"
    storage_class: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # None: the cluster's default


class DeployParameters(Model):
    """How `nox -s deploy` sizes a pipeline on Kubernetes: `[deploy]` in pipeline.toml, else these
    defaults. CPU = instances x cpu_threads cores; memory = instances x memory_mib + /dev/shm."""

    min_replicas: int = Field(2, ge=1)  # two, so a PodDisruptionBudget lets a node drain while serving
    max_replicas: int = Field(4, ge=1)
    instances: int = Field(1, ge=1)  # HPS_INSTANCES: model instances per model
    cpu_threads: int = Field(2, ge=1)  # HPS_CPU_THREADS: Paddle math threads per instance
    # One instance set's working set: 223-654 MiB measured at the peak of 96 golden requests, 32 at
    # a time (cpu, 2 threads), for the four shipped pipelines; 1024 leaves room for larger inputs.
    memory_mib: int = Field(1024, ge=128)
    shm_mib: int | None = Field(None, ge=64)  # None: sized from the model repository (build/deploy.py)
    target_cpu_utilization: int = Field(70, ge=10, le=100)  # of the CPU request, for the autoscaler
    start_seconds: float | None = Field(None, gt=0)  # measured start-to-ready; None: build/deploy.py's figure
    state: StateVolume | None = None

    @model_validator(mode="after")
    def _replicas(self) -> DeployParameters:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        if self.state and self.state.access_mode != "ReadWriteMany" and self.max_replicas != 1:
            # One node mounts such a volume, and the index is one writer's files: more pods would
            # hang in Pending or serve another copy of the index.
            raise ValueError(
                f"a {self.state.access_mode} state volume serves one pod: set max_replicas = 1 "
                'and min_replicas = 1, or state.access_mode = "ReadWriteMany" on a filesystem '
                "with working flock and rename (NFSv4, CephFS)"
            )
        return self


class Pipeline(Model):
    """A pipeline's declaration: what it needs in the image besides the runtime."""

    description: str
    requirements: list[PipRequirement] = []
    models: list[ModelArtifact] = []
    # Golden inputs for the tests, from locked sources like the models, never shipped.
    fixtures: list[ModelArtifact] = []
    # Read by the pipeline's own server code (validated there by its pydantic model at load).
    settings: dict[str, Any] = {}
    # Kubernetes sizing for `nox -s deploy` (never read by the server).
    deploy: DeployParameters = DeployParameters()

    @model_validator(mode="after")
    def _unique_names(self) -> Pipeline:
        names = [artifact.name for artifact in [*self.models, *self.fixtures]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"model/fixture name(s) used twice: {', '.join(repeated)}")
        return self


def load_pipeline(folder: Path) -> tuple[str, Pipeline]:
    path = folder / "pipeline.toml"
    return folder.name, validate_toml(Pipeline, read_toml(path), path)


def load_pipelines(directory: Path | None = None) -> dict[str, Pipeline]:
    """Every pipeline (default: under the project's pipelines/), by folder name, in a stable order."""
    directory = settings().pipelines_dir if directory is None else directory
    if not directory.is_dir():
        return {}
    return dict(load_pipeline(folder) for folder in sorted(directory.iterdir()) if (folder / "pipeline.toml").exists())


def image_slug(name: str) -> str:
    """The pipeline's name as used in image names and URLs: lower case, dashes."""
    return name.lower().replace("_", "-")


def select(pipelines: dict[str, Pipeline], names: list[str]) -> dict[str, Pipeline]:
    unknown = [name for name in names if name not in pipelines]
    if unknown:
        raise UsageError(f"unknown pipeline(s) {', '.join(unknown)}; known: {', '.join(pipelines)}")
    return {name: pipelines[name] for name in names}
