"""Pipeline declarations (pipelines/<Name>/pipeline.toml): requirements and locked model artifacts."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from hpsforge.config import PROJECT_ROOT, Model, PinnedRequirement, PipRequirement, Sha256Hex, read_toml, validate_toml
from hpsforge.errors import HpsforgeError

PIPELINES_DIR = PROJECT_ROOT / "pipelines"


class ModelSource(Model):
    """Where a model's files come from: one file of a locked PyPI release, a URL, or a vendor blob."""

    pypi: PinnedRequirement | None = None
    file: str | None = None
    url: str | None = None
    sha256: Sha256Hex | None = None
    blob: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "ModelSource":
        given = {name for name in ("pypi", "file", "url", "sha256", "blob") if getattr(self, name) is not None}
        if given not in ({"pypi", "file"}, {"url", "sha256"}, {"blob"}):
            raise ValueError("give exactly one of: pypi + file, url + sha256, blob")
        return self

    def describe(self) -> str:
        if self.pypi:
            return f"{self.file} of {self.pypi}"
        return self.url or f"vendor blob {self.blob}"


class ModelArtifact(Model):
    """One model a pipeline serves: its source archive and the sha256 of every file taken from it."""

    name: str
    source: ModelSource
    files: dict[str, Sha256Hex]


class Pipeline(Model):
    """A pipeline's declaration: what it needs in the image besides the runtime."""

    description: str
    requirements: list[PipRequirement] = []
    models: list[ModelArtifact] = []


def load_pipeline(folder: Path) -> tuple[str, Pipeline]:
    path = folder / "pipeline.toml"
    return folder.name, validate_toml(Pipeline, read_toml(path), path)


def load_pipelines(directory: Path = PIPELINES_DIR) -> dict[str, Pipeline]:
    """Every pipeline, by folder name, in a stable order."""
    if not directory.is_dir():
        return {}
    return dict(load_pipeline(folder) for folder in sorted(directory.iterdir())
                if (folder / "pipeline.toml").exists())


def select(pipelines: dict[str, Pipeline], names: list[str]) -> dict[str, Pipeline]:
    unknown = [name for name in names if name not in pipelines]
    if unknown:
        raise HpsforgeError(f"unknown pipeline(s) {', '.join(unknown)}; known: {', '.join(pipelines)}")
    return {name: pipelines[name] for name in names}
