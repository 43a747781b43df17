"""A deterministic in-toto Statement (SLSA provenance v1) per image of the build graph, from the locks.

The subject is the image's manifest digest; `resolvedDependencies` lists every locked input that
went into that node (the base's .debs, a runtime's wheels, lock and vendor blobs, a pipeline's
model files, the parents by digest, the project's revision); the build definition names the node,
its target and the declaration hashes. Times are SOURCE_DATE_EPOCH, never the clock, and the JSON
is canonical (sorted keys): the same locks and digests give the same bytes. BuildKit's own
provenance is not used because it is not reproducible (timestamps, an invocation id).

`drift` answers the other direction for `verify`: which of a statement's inputs the current locks
no longer pin, each with both hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpsforge.core import proc
from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError, ProvenanceMismatchError
from hpsforge.core.files import atomic_write_text, canonical_json, sha256_file
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.project import Project
from hpsforge.core.reference import ImageReference
from hpsforge.core.settings import settings
from hpsforge.images import graph
from hpsforge.inputs import blobs, wheelhouse
from hpsforge.locks import conversions, debian, pip_locks, requirements_lock
from hpsforge.locks.images_lock import ImageRecord

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://hpsforge.invalid/image-build/v1"  # ours: names what externalParameters mean
BUILDER_ID = "https://hpsforge.invalid/builder/locked-graph"
DIRTY = "-dirty"  # a revision with uncommitted changes in the checkout
PAYLOAD_TYPE = "application/vnd.in-toto+json"  # the DSSE payload type of a statement


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class ResourceDescriptor(_Frozen):
    name: str
    uri: str | None = None
    digest: dict[str, str]
    annotations: dict[str, str] | None = None


class Node(_Frozen):
    """Which image of the graph a statement describes (SLSA's externalParameters)."""

    role: str
    kind: Literal["base", "rc", "runtime", "pipeline"]
    target: str | None = None
    pipeline: str | None = None
    input_sha256: str = Field(alias="inputSha256")


class BuildDefinition(_Frozen):
    build_type: str = Field(BUILD_TYPE, alias="buildType")
    external_parameters: Node = Field(alias="externalParameters")
    internal_parameters: dict[str, str | int] = Field(alias="internalParameters")
    resolved_dependencies: tuple[ResourceDescriptor, ...] = Field(alias="resolvedDependencies")


class Builder(_Frozen):
    id: str = BUILDER_ID


class BuildMetadata(_Frozen):
    started_on: str = Field(alias="startedOn")
    finished_on: str = Field(alias="finishedOn")


class RunDetails(_Frozen):
    builder: Builder = Builder()
    metadata: BuildMetadata


class Provenance(_Frozen):
    build_definition: BuildDefinition = Field(alias="buildDefinition")
    run_details: RunDetails = Field(alias="runDetails")


class _InTotoStatement(_Frozen):
    """What every in-toto Statement v1 hpsforge writes shares: its subject, its bytes, its parsing."""

    what: ClassVar[str]  # how an unreadable one is named in errors
    type: Literal["https://in-toto.io/Statement/v1"] = Field(STATEMENT_TYPE, alias="_type")
    subject: tuple[ResourceDescriptor, ...] = Field(min_length=1)

    @property
    def digest(self) -> str:
        return f"sha256:{self.subject[0].digest['sha256']}"

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> Self:
        try:
            return cls.model_validate_json(data, strict=False)
        except ValidationError as error:
            problem = error.errors()[0]
            raise ProvenanceMismatchError(
                f"{where} is not an hpsforge {cls.what} "
                f"({'.'.join(map(str, problem['loc'])) or '(document)'}: {problem['msg']})"
            ) from None


class Statement(_InTotoStatement):
    what: ClassVar[str] = "provenance statement"
    predicate_type: Literal["https://slsa.dev/provenance/v1"] = Field(PREDICATE_TYPE, alias="predicateType")
    predicate: Provenance

    @property
    def node(self) -> Node:
        return self.predicate.build_definition.external_parameters


def node_of(node: graph.Node, record: ImageRecord) -> Node:
    """The statement's view of a graph node."""
    kinds: dict[str, Literal["base", "rc", "runtime", "pipeline"]] = {
        "base": "base",
        "rc": "rc",
        "runtime": "runtime",
        "pipeline": "pipeline",
    }
    return Node(
        role=node.role,
        kind=kinds[node.kind],
        target=node.target,
        pipeline=node.pipeline,
        input_sha256=record.input_sha256,
    )


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _file(name: str, path: Path) -> ResourceDescriptor:
    return ResourceDescriptor(name=name, digest={"sha256": sha256_file(path)})


def _debs(lock: debian.DebianLock) -> list[ResourceDescriptor]:
    return [
        ResourceDescriptor(name=f"deb:{p.name}@{p.version}:{p.architecture}", uri=p.url, digest={"sha256": p.sha256})
        for p in lock.packages
    ]


def _wheels(lock_path: Path, fetched: dict[str, str]) -> list[ResourceDescriptor]:
    """One entry per wheel: the file a wheelhouse of this very lock holds, else each hash the lock allows."""
    entries = []
    for requirement in requirements_lock.read(lock_path).requirements:
        name = requirements_lock.canonical_name(requirement.name)
        chosen = [fetched[name]] if fetched.get(name) in requirement.hashes else sorted(requirement.hashes)
        entries += [
            ResourceDescriptor(
                name=f"pypi:{name}=={requirement.version}",
                uri=f"pkg:pypi/{name}@{requirement.version}",
                digest={"sha256": digest},
            )
            for digest in chosen
        ]
    return entries


def _fetched_wheels(target: str) -> dict[str, str]:
    manifest = wheelhouse.read_manifest(target)
    if manifest is None or manifest.lock_sha256 != sha256_file(pip_locks.lock_path(target)):
        return {}
    return {wheelhouse.wheel_project(w.filename): w.sha256 for w in manifest.wheels}


def _models(name: str, pipeline: Pipeline) -> list[ResourceDescriptor]:
    """Each model file, then each file converted from it (lock/conversions.json) by engine."""
    models = [
        ResourceDescriptor(
            name=f"model:{name}/{artifact.name}/{path}", uri=artifact.source.url, digest={"sha256": digest}
        )
        for artifact in pipeline.models
        for path, digest in sorted(artifact.files.items())
    ]
    if not any(artifact.converted_engines() for artifact in pipeline.models):
        return models
    converted = conversions.ConversionsLock.read()
    return models + [
        ResourceDescriptor(name=f"converted:{name}/{artifact.name}/{engine}/{file}", digest={"sha256": locked.sha256})
        for artifact in pipeline.models
        for engine in artifact.converted_engines()
        for file, locked in sorted(converted.entry(name, artifact.name, engine).files.items())
    ]


def locked_inputs(project: Project, node: Node) -> list[ResourceDescriptor]:
    """What the current locks pin for `node` (the parents and the revision are not locks: added apart)."""
    config = project.config
    root = settings().root
    if node.kind == "base":
        return [_file("lock:" + debian.base_lock_path().relative_to(root).as_posix(), debian.base_lock_path())] + _debs(
            debian.DebianLock.read(debian.base_lock_path())
        )
    if node.kind == "rc":
        lock = pip_locks.rc_lock_path()
        return [_file("lock:" + lock.relative_to(root).as_posix(), lock)] + _wheels(lock, {})
    if node.target is None:
        raise HpsforgeError(f"{node.role}: a {node.kind} node names no target")
    if node.kind == "runtime":
        lock = pip_locks.lock_path(node.target)
        manifest = blobs.load_manifest()
        return (
            [_file("lock:" + lock.relative_to(root).as_posix(), lock)]
            + _wheels(lock, _fetched_wheels(node.target))
            + [
                ResourceDescriptor(
                    name=f"blob:{name}", uri=manifest.get(name).url, digest={"sha256": manifest.get(name).sha256}
                )
                for name in config.target(node.target).blobs
            ]
        )
    if node.pipeline not in project.pipelines:
        raise HpsforgeError(f"{node.role}: pipeline {node.pipeline!r} is not among the project's pipelines")
    return _models(node.pipeline, project.pipelines[node.pipeline])


def _declarations(config: ProjectConfig, pipelines: dict[str, Pipeline], node: Node) -> dict[str, str | int]:
    declared: dict[str, str | int] = {
        "declaration:base": config.base.declaration_sha256(),
        "sourceDateEpoch": config.base.source_date_epoch,
    }
    if node.kind != "base":
        declared["declaration:rc"] = config.rc.declaration_sha256()
    if node.target is not None:
        declared[f"declaration:{node.target}"] = pip_locks.declaration_sha256(config, pipelines, node.target)
    return declared


def project_revision() -> str:
    """The checkout's commit (with `-dirty` when files differ from it), or `unknown` outside git."""
    root = settings().root
    head = proc.run(["git", "rev-parse", "HEAD"], cwd=root, what="git rev-parse failed", check=False, timeout=30)
    if head.returncode != 0:
        return "unknown"
    status = proc.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, what="git status failed", timeout=30
    )
    return head.stdout.strip() + (DIRTY if status.stdout.strip() else "")


def statement(
    project: Project,
    node: Node,
    record: ImageRecord,
    parents: dict[str, ImageRecord],
    revision: str,
) -> Statement:
    repository = ImageReference.parse(record.reference).repository
    dependencies = [
        *locked_inputs(project, node),
        *(
            ResourceDescriptor(name=f"image:{role}", digest={"sha256": _hex(image.digest)})
            for role, image in sorted(parents.items())
        ),
        ResourceDescriptor(
            name="revision",
            digest={"gitCommit": revision.removesuffix(DIRTY)},
            annotations={"uncommittedChanges": "true"} if revision.endswith(DIRTY) else None,
        ),
    ]
    epoch = datetime.fromtimestamp(project.config.base.source_date_epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Statement(
        subject=(ResourceDescriptor(name=repository, digest={"sha256": _hex(record.digest)}),),
        predicate=Provenance(
            build_definition=BuildDefinition(
                external_parameters=node,
                internal_parameters=_declarations(project.config, project.pipelines, node),
                resolved_dependencies=tuple(sorted(dependencies, key=lambda d: (d.name, canonical_json(d.digest)))),
            ),
            run_details=RunDetails(metadata=BuildMetadata(started_on=epoch, finished_on=epoch)),
        ),
    )


def statement_parents(
    walk: graph.BuildGraph, node: graph.Node, built: dict[str, ImageRecord]
) -> dict[str, ImageRecord]:
    """The parents a statement names by digest: not tool images (the converter), whose outputs it
    names instead (`converted:` entries, from lock/conversions.json)."""
    return {parent: built[parent] for parent in node.parents if walk.nodes[parent].bit_for_bit}


def write_statements(project: Project, targets: list[str], built: dict[str, ImageRecord]) -> dict[str, bytes]:
    """output/provenance/<role>.intoto.json for every image of the targets' graph that was built;
    role -> the statement's bytes."""
    revision = project_revision()
    written = {}
    walk = graph.BuildGraph.of(project, targets)
    for node in walk:
        # A tool image (the converter) is never released: what it made is named by its files' sha256.
        if node.role not in built or not node.bit_for_bit:
            continue
        parents = statement_parents(walk, node, built)
        statement_ = statement(project, node_of(node, built[node.role]), built[node.role], parents, revision)
        write(statement_)
        written[node.role] = statement_.canonical_bytes()
    print(f"hpsforge: provenance of {len(written)} image(s) in {provenance_dir()}", flush=True)
    return written


def provenance_dir() -> Path:
    return settings().output_dir / "provenance"


def statement_path(role: str, folder: Path | None = None) -> Path:
    return (provenance_dir() if folder is None else folder) / f"{role}.intoto.json"


def write(statement_: Statement, folder: Path | None = None) -> Path:
    path = statement_path(statement_.node.role, folder)
    atomic_write_text(path, statement_.canonical_bytes().decode())
    return path


def drift(project: Project, statement_: Statement, recorded: dict[str, ImageRecord]) -> list[str]:
    """Each input of the statement that the current locks (and recorded parents) do not pin, named
    with both hashes; an empty list when every input is the locked one."""
    node = statement_.node
    expected: dict[str, set[str]] = {}
    for entry in locked_inputs(project, node):
        expected.setdefault(entry.name, set()).add(entry.digest["sha256"])
    problems = []
    for entry in statement_.predicate.build_definition.resolved_dependencies:
        if entry.name == "revision":
            continue
        if entry.name.startswith("image:"):
            role = entry.name.removeprefix("image:")
            if role in recorded and _hex(recorded[role].digest) != entry.digest.get("sha256"):
                problems.append(
                    f"{entry.name}: the statement says sha256:{entry.digest.get('sha256')}, "
                    f"lock/images.lock.json records {recorded[role].digest}"
                )
            continue
        have = entry.digest.get("sha256", "")
        if entry.name not in expected:
            problems.append(f"{entry.name} (sha256:{have}): no current lock pins this input")
        elif have not in expected[entry.name]:
            problems.append(
                f"{entry.name}: the statement says sha256:{have}, the locks pin "
                + " or ".join(f"sha256:{d}" for d in sorted(expected[entry.name]))
            )
    return problems


# --- verified reproducible: a rebuild's own statement ---------------------------------------------

REBUILD_PREDICATE_TYPE: Final = "https://hpsforge.invalid/rebuild/v1"


class Rebuild(_Frozen):
    """'Rebuilt from nothing on this machine, same digest': what a repro run attests of one image."""

    role: str
    input_sha256: str = Field(alias="inputSha256")
    revision: str
    from_archive: bool = Field(alias="fromArchive")
    machine: dict[str, str]


class RebuildStatement(_InTotoStatement):
    what: ClassVar[str] = "rebuild statement"
    predicate_type: Literal["https://hpsforge.invalid/rebuild/v1"] = Field(
        REBUILD_PREDICATE_TYPE, alias="predicateType"
    )
    predicate: Rebuild


def rebuild_statement(
    role: str,
    repository: str,
    digest: str,
    input_sha256: str,
    revision: str,
    from_archive: bool,
    machine: dict[str, str],
) -> RebuildStatement:
    return RebuildStatement(
        subject=(ResourceDescriptor(name=repository, digest={"sha256": _hex(digest)}),),
        predicate=Rebuild(
            role=role, input_sha256=input_sha256, revision=revision, from_archive=from_archive, machine=machine
        ),
    )
