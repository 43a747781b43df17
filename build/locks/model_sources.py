"""lock/model-sources.json: the exact PyPI files pipelines take model files and fixtures from
(each file's URL, size and sha256), and the declaration it is resolved from."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from hpsforge.core.config import Model, PinnedRequirement, Sha256Hex
from hpsforge.core.errors import StaleLockError
from hpsforge.core.files import canonical_json, sha256_bytes
from hpsforge.core.pipelines import ModelSource, Pipeline
from hpsforge.core.settings import settings

FREEZE = "nox -s freeze -- model-sources"


def model_sources_lock_path() -> Path:
    return settings().lock_dir / "model-sources.json"


class SourceFile(Model):
    """One locked file of a PyPI release: where it is served and the bytes it must have.

    PyPI never changes a published file, so the URL keeps serving exactly these bytes; once the
    file is in the store (or an imported archive), nothing asks the index again.
    """

    pypi: PinnedRequirement
    file: str
    url: str
    size: int
    sha256: Sha256Hex


class ModelSourcesLock(Model):
    """lock/model-sources.json: every PyPI file a model or fixture is taken from."""

    input_sha256: Sha256Hex
    files: list[SourceFile]

    @classmethod
    def read(cls, path: Path | None = None) -> ModelSourcesLock:
        path = path or model_sources_lock_path()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StaleLockError(f"{path}: lock file missing", hint=f"create it with `{FREEZE}`") from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise StaleLockError(
                f"{path}: malformed lock ({where}: {first['msg']})",
                hint=f"restore it from git or rewrite it with `{FREEZE}`",
            ) from None

    def canonical_text(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def find(self, source: ModelSource) -> SourceFile:
        for entry in self.files:
            if (entry.pypi, entry.file) == (source.pypi, source.file):
                return entry
        raise StaleLockError(
            f"{model_sources_lock_path()}: {source.file} of {source.pypi} is not locked",
            hint=f"re-lock with `{FREEZE}`",
        )

    def problems(self, pipelines: dict[str, Pipeline]) -> list[str]:
        if self.input_sha256 != declaration_sha256(pipelines):
            return [
                f"{model_sources_lock_path()} is stale: the pipelines' model sources changed since it was locked; "
                f"refresh with `{FREEZE}`"
            ]
        return []


def pypi_files(pipelines: dict[str, Pipeline]) -> list[tuple[str, str]]:
    """Every (release, file) a model or fixture is taken from, sorted and unique."""
    return sorted(
        {
            (artifact.source.pypi, artifact.source.file)
            for pipeline in pipelines.values()
            for artifact in [*pipeline.models, *pipeline.fixtures]
            if artifact.source.pypi and artifact.source.file  # the model's validator pairs them
        }
    )


def declaration_sha256(pipelines: dict[str, Pipeline]) -> str:
    return sha256_bytes(canonical_json(pypi_files(pipelines)).encode())
