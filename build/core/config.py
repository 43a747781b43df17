"""The project configuration (hpsforge.toml): one pydantic model per concept.

Errors name the file, the dotted field and the reason, so a typo never surfaces as a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import tomli
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from hpsforge.core.debversion import Constraint
from hpsforge.core.errors import UsageError
from hpsforge.core.files import canonical_json, sha256_bytes
from hpsforge.core.settings import settings

DebianName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]
DebianVersion = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.+~:-]+$")]
ImageName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")]
PinnedRequirement = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!]+$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]


def _check_requirement(text: str) -> str:
    try:
        Requirement(text)
    except InvalidRequirement as error:
        raise ValueError(f"not a valid requirement: {error}") from None
    return text


PipRequirement = Annotated[str, AfterValidator(_check_requirement)]


class Model(BaseModel):
    """Strict base: unknown fields are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The fields a lock is resolved from; None means all. Editing any other field (an image name,
    # an epoch, a log path) must not make the lock stale.
    RESOLUTION_FIELDS: ClassVar[set[str] | None] = None

    def declaration_sha256(self) -> str:
        """Hash of what a lock is resolved from; locks record it to detect edits made without a re-lock."""
        return sha256_bytes(canonical_json(self.model_dump(mode="json", include=self.RESOLUTION_FIELDS)).encode())


def _check_constraint(text: str) -> str:
    Constraint.parse(text)
    return text


# `>= 26.1.5, << 26.2~`: a Debian rebuild (+b1) or a newer revision of the series still matches.
VersionConstraint = Annotated[str, AfterValidator(_check_constraint)]


class HostPackage(Model):
    """A Debian package installed on the build host (the engine and its tools).

    `version` is a constraint in apt's relation syntax; freeze pins the newest version of
    `suite` that satisfies it.
    """

    name: DebianName
    version: VersionConstraint
    suite: str


class AptSource(Model):
    """One apt source packages are resolved from."""

    uri: str
    suite: str
    components: list[str] = ["main"]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


SNAPSHOT = "https://snapshot.debian.org"


class EngineConfig(Model):
    """How a bare Debian host gets a Docker engine with BuildKit, and the host tools tests use.

    The lock holds the whole closure: the declared packages (from `mirror`'s suites) and every
    dependency, resolved from the build hosts' own release (`host_suite`, `host_sources`), so a
    host without network can install the engine from an input archive.
    """

    RESOLUTION_FIELDS: ClassVar[set[str]] = {"mirror", "packages", "tools", "host_suite", "host_sources", "snapshot"}

    mirror: str
    keyring: Path
    minimum_server_version: str
    minimum_buildx_version: str
    daemon_log: Path
    packages: list[HostPackage] = Field(min_length=1)
    # Installed only where the tests need them (a registry to push to, for one).
    tools: list[HostPackage] = []
    host_suite: str
    host_sources: list[AptSource] = Field(min_length=1)
    # snapshot.debian.org keeps every file it ever served, by sha1: the fallback when the mirror drops one.
    snapshot: str = SNAPSHOT
    # The most BuildKit's cache keeps on an engine hpsforge sets up (its own default is a tenth of
    # the disk's size, which on a shared CI disk can be more than is free); an engine of the
    # user's own keeps its own setting.
    build_cache_keep: str = Field("10GB", pattern=r"^[1-9][0-9]*(MB|GB)$")


class BaseConfig(Model):
    """The Debian package set of the base image and the epoch all its timestamps take."""

    RESOLUTION_FIELDS: ClassVar[set[str]] = {"suite", "architecture", "packages", "sources", "snapshot"}

    suite: str
    architecture: str
    packages: list[DebianName] = Field(min_length=1)
    sources: list[AptSource] = Field(min_length=1)
    # The keyring apt checks the sources' signed indices against (default: apt's own trusted keys).
    keyring: Path | None = None
    snapshot: str = SNAPSHOT
    source_date_epoch: int = Field(ge=0)
    image: ImageName


class RcConfig(Model):
    """The rc image: the base plus the Python tools that `freeze` runs inside it."""

    RESOLUTION_FIELDS: ClassVar[set[str]] = {"requirements"}

    image: ImageName
    requirements: list[PinnedRequirement] = Field(min_length=1)


class PythonConfig(Model):
    """pip requirements every target's image holds (the runtime and the pipelines share them)."""

    common: list[PipRequirement] = Field(min_length=1)


LibraryName = Annotated[str, StringConstraints(pattern=r"^lib[A-Za-z0-9_+-]+\.so(\.[0-9]+)*$")]


class CudaLibrary(Model):
    """One shared library a GPU runtime opens, by the name it is opened with, and its provider."""

    name: LibraryName
    # A wheel of the target's pip lock, a vendor blob of the target, or "driver" (the host's,
    # mounted into the container by the NVIDIA container toolkit).
    source: str = Field(min_length=1)
    # Who opens it (shown by hps-gpu-check): Paddle, Triton, cuDNN (its sub-libraries), TensorRT.
    user: str = Field(min_length=1)


class CudaConfig(Model):
    """The CUDA stack of a GPU target: recorded in the image's labels and SBOM, installed by the
    runtime build (unversioned links, only these files from the archives), checked by hps-gpu-check."""

    version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+$")]
    libraries: list[CudaLibrary] = Field(min_length=1)
    # Files the wheels install that nothing opens (site-packages-relative): left out of the image.
    unused: list[Annotated[str, StringConstraints(pattern=r"^nvidia/[A-Za-z0-9_./-]+$")]] = []

    @field_validator("libraries")
    @classmethod
    def _unique(cls, libraries: list[CudaLibrary]) -> list[CudaLibrary]:
        names = [library.name for library in libraries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"declared twice: {', '.join(duplicates)}")
        return libraries


class TargetConfig(Model):
    """One device target: its pip requirements, the vendor blobs it needs, its runtime image."""

    requirements: list[PipRequirement] = Field(min_length=1)
    blobs: list[str] = []
    image: ImageName
    # The stage of dockerfiles/runtime.Dockerfile that builds this target's runtime.
    stage: str
    # GPU targets: the CUDA stack the runtime carries (see CudaConfig).
    cuda: CudaConfig | None = None
    # gzip level of the runtime's layers (None: BuildKit's default, 6 in Go's compress/gzip).
    compression_level: int | None = Field(default=None, ge=1, le=9)


class ProjectConfig(Model):
    """Everything hpsforge.toml declares."""

    engine: EngineConfig
    base: BaseConfig
    rc: RcConfig
    python: PythonConfig
    targets: dict[TargetName, TargetConfig] = Field(min_length=1)

    def target(self, name: str) -> TargetConfig:
        if name not in self.targets:
            raise UsageError(f"unknown target {name!r}; hpsforge.toml declares: {', '.join(sorted(self.targets))}")
        return self.targets[name]


M = TypeVar("M", bound=Model)


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def load_config(path: Path | None = None) -> ProjectConfig:
    """Read and validate the project configuration (default: the settings' hpsforge.toml), or say
    precisely what is wrong."""
    path = settings().config_file if path is None else path
    return validate_toml(ProjectConfig, read_toml(path), path)


def validate_toml(model: type[M], raw: dict[str, Any], path: Path) -> M:
    """Validate parsed TOML against `model`, naming the file, each bad field and why."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = [f"  {_field_path(item['loc'])}: {_reason(item)}" for item in error.errors()]
        raise UsageError(
            f"{path}: invalid configuration\n" + "\n".join(problems),
            hint=f"fix the fields named above; the schema is {model.__name__} in build/",
        ) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomli.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except tomli.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML: {error}") from None


def _reason(item: ErrorDetails) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] == "value_error":
        return item["msg"].removeprefix("Value error, ")
    if item["type"] == "string_pattern_mismatch":
        return f"{item['input']!r} is not well-formed ({item['msg'].split(' ', 2)[-1]})"
    return item["msg"]


def version_tuple(version: str, width: int = 3) -> tuple[int, ...]:
    """'26.1.5+dfsg1' -> (26, 1, 5); '26' -> (26, 0, 0): comparable release numbers."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", version)
    if not match:
        raise ValueError(f"no numeric version in {version!r}")
    parts = tuple(int(part) for part in match.group(1).split("."))
    return parts + (0,) * (width - len(parts))
