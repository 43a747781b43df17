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
    model_validator,
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
    """a pip requirement (PEP 508)"""
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
    """a version constraint in apt's relation syntax, e.g. `>= 26.1.5, << 26.2~`"""
    Constraint.parse(text)
    return text


# `>= 26.1.5, << 26.2~`: a Debian rebuild (+b1) or a newer revision of the series still matches.
VersionConstraint = Annotated[str, AfterValidator(_check_constraint)]


class HostPackage(Model):
    """A Debian package installed on the build host (the engine and its tools).

    `version` is a constraint in apt's relation syntax; freeze pins the newest version of
    `suite` that satisfies it.
    """

    name: DebianName = Field(description="The Debian package's name.")
    version: VersionConstraint = Field(
        description="The versions allowed; freeze pins the newest one `suite` has within them."
    )
    suite: str = Field(description="The Debian suite the package comes from (e.g. `trixie`).")


class AptSource(Model):
    """One apt source packages are resolved from."""

    uri: str = Field(description="The mirror's URL.")
    suite: str = Field(description="The suite resolved from (e.g. `bookworm`, `bookworm-updates`).")
    components: list[str] = Field(["main"], description="The archive areas resolved from.")

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

    mirror: str = Field(description="The Debian mirror the engine packages' suites are resolved from.")
    keyring: Path = Field(description="The keyring gpgv checks the mirror's signed indices against.")
    minimum_server_version: str = Field(description="The oldest Docker engine hpsforge accepts.")
    minimum_buildx_version: str = Field(description="The oldest buildx hpsforge accepts.")
    daemon_log: Path = Field(description="Where a `dockerd` that hpsforge starts logs.")
    packages: list[HostPackage] = Field(
        min_length=1, description="The engine's packages (Docker, buildx, containerd); the lock adds their closure."
    )
    tools: list[HostPackage] = Field(
        [], description="Host tools installed only where the tests need them (a registry to push to, for one)."
    )
    host_suite: str = Field(description="The build hosts' own Debian release, which every dependency is resolved from.")
    host_sources: list[AptSource] = Field(min_length=1, description="The apt sources of `host_suite`.")
    snapshot: str = Field(
        SNAPSHOT,
        description="snapshot.debian.org (or a mirror of it): keeps every file it served, by sha1; "
        "the fallback when the mirror drops a locked file.",
    )
    # BuildKit's own default is a tenth of the disk, which on a shared CI disk can be more than is free.
    build_cache_keep: str = Field(
        "10GB",
        pattern=r"^[1-9][0-9]*(MB|GB)$",
        description="The most BuildKit's cache keeps on an engine hpsforge sets up "
        "(an engine of the user's own keeps its own setting).",
    )


class BaseConfig(Model):
    """The Debian package set of the base image and the epoch all its timestamps take."""

    RESOLUTION_FIELDS: ClassVar[set[str]] = {"suite", "architecture", "packages", "sources", "snapshot"}

    suite: str = Field(description="The Debian release of the base image (e.g. `bookworm`).")
    architecture: str = Field(description="The Debian architecture of every image (e.g. `amd64`).")
    packages: list[DebianName] = Field(
        min_length=1, description="The base image's packages; mmdebstrap resolves their closure into the lock."
    )
    sources: list[AptSource] = Field(min_length=1, description="The apt sources the package set is resolved from.")
    keyring: Path | None = Field(
        None, description="The keyring apt checks the sources' signed indices against (unset: apt's own keys)."
    )
    snapshot: str = Field(SNAPSHOT, description="snapshot.debian.org: the fallback when the mirror drops a file.")
    source_date_epoch: int = Field(
        ge=0, description="SOURCE_DATE_EPOCH: the time every file and layer of every image takes."
    )
    image: ImageName = Field(description="The base image's repository name.")


class RcConfig(Model):
    """The rc image: the base plus the Python tools that `freeze` runs inside it."""

    RESOLUTION_FIELDS: ClassVar[set[str]] = {"requirements"}

    image: ImageName = Field(description="The rc image's repository name.")
    requirements: list[PinnedRequirement] = Field(
        min_length=1, description="pip-tools and its whole closure, each pinned (`name==version`); hashin adds hashes."
    )


class PythonConfig(Model):
    """pip requirements every target's image holds (the runtime and the pipelines share them)."""

    common: list[PipRequirement] = Field(min_length=1, description="Requirements of every target's lock.")


LibraryName = Annotated[str, StringConstraints(pattern=r"^lib[A-Za-z0-9_+-]+\.so(\.[0-9]+)*$")]


class CudaLibrary(Model):
    """One shared library a GPU runtime opens, by the name it is opened with, and its provider."""

    name: LibraryName = Field(description="The name the library is opened by (`libcublas.so`).")
    source: str = Field(
        min_length=1,
        description="What provides it: a wheel of the target's pip lock, a vendor blob of the target, "
        'or `"driver"` (the host\'s, mounted by the NVIDIA container toolkit).',
    )
    user: str = Field(
        min_length=1,
        description="Who opens it, as hps-gpu-check shows: Paddle, Triton, cuDNN (its sub-libraries), TensorRT.",
    )


GpuArchitecture = Annotated[str, StringConstraints(pattern=r"^sm_[1-9][0-9]{1,2}$")]


class CudaConfig(Model):
    """The CUDA stack of a GPU target: recorded in the image's labels and SBOM, installed by the
    runtime build (unversioned links, only these files from the archives), checked by hps-gpu-check."""

    version: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+$")] = Field(
        description="The CUDA release (`11.8`), recorded as the image's `io.hpsforge.cuda.version` label."
    )
    libraries: list[CudaLibrary] = Field(min_length=1, description="Every library Paddle and Triton open at run time.")
    unused: list[Annotated[str, StringConstraints(pattern=r"^nvidia/[A-Za-z0-9_./-]+$")]] = Field(
        [],
        description="Files the wheels install that nothing opens (relative to site-packages): left out of the image.",
    )
    architectures: list[GpuArchitecture] = Field(
        [],
        description="The GPU architectures the image promises (`sm_75`): the build proves each from the kernels "
        "(SASS or PTX) of every CUDA library in the target's wheels, fails when one is not covered, and records "
        "them in the `io.hpsforge.cuda.architectures` label. Empty: nothing promised, nothing checked.",
    )
    driver: Annotated[str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")] = Field(
        description="The oldest Linux driver the image runs on (`525.60.13`: CUDA 12's minor version "
        "compatibility), recorded as the `io.hpsforge.driver.minimum` label and checked by hps-gpu-check."
    )

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

    requirements: list[PipRequirement] = Field(
        min_length=1, description="The target's own pip requirements (Paddle's build for the device)."
    )
    blobs: list[str] = Field([], description="The vendor blobs (`vendor_blobs/manifest.toml`) the target needs.")
    image: ImageName = Field(description="The target's runtime image's repository name.")
    stage: str = Field(description="The stage of `dockerfiles/runtime.Dockerfile` that builds the runtime.")
    cuda: CudaConfig | None = Field(None, description="GPU targets: the CUDA stack the runtime carries.")
    compression_level: int | None = Field(
        default=None, ge=1, le=9, description="gzip level of the runtime's layers (unset: BuildKit's default, 6)."
    )


class ProjectConfig(Model):
    """Everything hpsforge.toml declares."""

    engine: EngineConfig = Field(description="The Docker engine a bare Debian host is given; `lock/engine.lock.json`.")
    base: BaseConfig = Field(description="The base image's Debian package set; `lock/debian.lock.json`.")
    rc: RcConfig = Field(description="The rc image's Python tools; `lock/rc-requirements.txt`.")
    python: PythonConfig = Field(description="Requirements every target shares.")
    targets: dict[TargetName, TargetConfig] = Field(
        min_length=1,
        description="The device targets by name (`cpu`, `gpu-cu12`, `gpu-cu118`); `lock/requirements/<name>.txt` each.",
    )
    aliases: dict[TargetName, TargetName] = Field(
        default_factory=dict,
        description="Names a user may type for a target (`gpu` for the release GPU target); commands take "
        "either, images, locks and records carry the target's own name.",
    )

    @model_validator(mode="after")
    def _aliases_name_targets(self) -> ProjectConfig:
        for alias, target in self.aliases.items():
            if alias in self.targets:
                raise ValueError(f"aliases.{alias}: {alias!r} is a target's own name; an alias names another")
            if target not in self.targets:
                declared = ", ".join(sorted(self.targets))
                raise ValueError(f"aliases.{alias}: {target!r} is no target; hpsforge.toml declares: {declared}")
        return self

    def target_name(self, name: str) -> str:
        """The target a name the user typed means: its own name, or the target an alias stands for."""
        if name in self.targets:
            return name
        if name in self.aliases:
            return self.aliases[name]
        known = sorted(self.targets) + [f"{alias} (= {target})" for alias, target in sorted(self.aliases.items())]
        raise UsageError(f"unknown target {name!r}; hpsforge.toml declares: {', '.join(known)}")

    def target(self, name: str) -> TargetConfig:
        if name not in self.targets:
            self.target_name(name)  # says what is declared when the name is unknown
            raise UsageError(
                f"{name!r} stands for target {self.aliases[name]!r} (aliases.{name}): "
                f"resolve it with ProjectConfig.target_name first"
            )
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
