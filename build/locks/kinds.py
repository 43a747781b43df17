"""Every lock hpsforge keeps, in one table: its file, the declaration it is resolved from, the
command that refreshes it, its problems check and what kind of file it pins.

lock-check, freeze (freeze/resolve.py), the input archive and the tests walk `kinds()` instead
of each knowing the lock modules. A new lock is one more entry here (and, if freeze writes it,
one freezer in freeze/resolve.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hpsforge.core.errors import HpsforgeError, StaleLockError, UsageError
from hpsforge.core.project import Project
from hpsforge.locks import conversions, debian, model_sources, pip_locks, requirements_lock

FREEZE = "nox -s freeze"
HOST_REFRESH = "nox -s host-lock"
# What a lock's entries are, for the input archive: .debs, wheels (of the images' platform, or the
# host's), PyPI files models and fixtures are taken from.
Pins = Literal["debs", "image-wheels", "host-wheels", "model-sources"]


@dataclass(frozen=True)
class LockKind:
    name: str
    path: Path
    declaration: str
    refresh: str
    problems: Callable[[Project], list[str]]
    pins: Pins | None  # None: nothing an image build or an archive needs (the client's lock)
    # `nox -s freeze` re-resolves it (the host lock has a command of its own).
    frozen: bool = True
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
    if not model_sources.pypi_files(project.pipelines):
        return []
    try:
        return model_sources.ModelSourcesLock.read().problems(project.pipelines)
    except HpsforgeError as error:
        return [str(error)]


def _conversions_problems(project: Project) -> list[str]:
    if not conversions.has_conversions(project.pipelines):
        return []
    try:
        return conversions.ConversionsLock.read().problems(project.pipelines)
    except HpsforgeError as error:
        return [str(error)]


def _target_kind(target: str) -> LockKind:
    path, refresh = pip_locks.lock_path(target), pip_locks.refresh_command(target)
    return LockKind(
        name=target,
        path=path,
        refresh=refresh,
        pins="image-wheels",
        in_rc=True,
        declaration=f"[python] and [targets.{target}] in hpsforge.toml, and every pipeline's requirements",
        problems=lambda p: _requirements_problems(
            path, pip_locks.declaration_sha256(p.config, p.pipelines, target), refresh
        ),
    )


def kinds(project: Project) -> list[LockKind]:
    """Every lock of the project, in the order a freeze resolves them."""
    engine_lock, base_lock, rc_lock = debian.engine_lock_path(), debian.base_lock_path(), pip_locks.rc_lock_path()
    client_lock, bench_lock = pip_locks.lock_path(pip_locks.CLIENT), pip_locks.lock_path(pip_locks.BENCH)
    docs_lock, convert_lock = pip_locks.lock_path(pip_locks.DOCS), pip_locks.lock_path(pip_locks.CONVERT)
    perf_lock = pip_locks.lock_path(pip_locks.PERF_ANALYZER)
    return [
        LockKind(
            "engine",
            engine_lock,
            "[engine] in hpsforge.toml",
            f"{FREEZE} -- engine",
            lambda p: _debian_problems(engine_lock, p.config.engine.declaration_sha256()),
            "debs",
        ),
        LockKind(
            "base",
            base_lock,
            "[base] in hpsforge.toml",
            f"{FREEZE} -- base",
            lambda p: _debian_problems(base_lock, p.config.base.declaration_sha256()),
            "debs",
        ),
        LockKind(
            "rc",
            rc_lock,
            "[rc] in hpsforge.toml",
            f"{FREEZE} -- rc",
            lambda p: _requirements_problems(rc_lock, p.config.rc.declaration_sha256(), f"{FREEZE} -- rc"),
            "image-wheels",
        ),
        LockKind(
            "model-sources",
            model_sources.model_sources_lock_path(),
            "the model and fixture sources in pipelines/*/pipeline.toml",
            model_sources.FREEZE,
            _model_sources_problems,
            "model-sources",
        ),
        *(_target_kind(target) for target in sorted(project.config.targets)),
        LockKind(
            pip_locks.CLIENT,
            client_lock,
            "sdk/client/pyproject.toml",
            pip_locks.refresh_command(pip_locks.CLIENT),
            lambda p: _requirements_problems(
                client_lock, pip_locks.client_declaration_sha256(), pip_locks.refresh_command(pip_locks.CLIENT)
            ),
            None,
            in_rc=True,
        ),
        # The serving benchmark's tools (bench images only): frozen after the cpu lock it follows.
        LockKind(
            pip_locks.BENCH,
            bench_lock,
            "bench/requirements.in",
            pip_locks.refresh_command(pip_locks.BENCH),
            lambda p: _requirements_problems(
                bench_lock, pip_locks.bench_declaration_sha256(), pip_locks.refresh_command(pip_locks.BENCH)
            ),
            "image-wheels",
            in_rc=True,
        ),
        # The documentation site's tools: installed only into `nox -s docs`'s own virtualenv, so
        # neither an image build nor an input archive needs them.
        LockKind(
            pip_locks.DOCS,
            docs_lock,
            "docs/requirements.in",
            pip_locks.refresh_command(pip_locks.DOCS),
            lambda p: _requirements_problems(
                docs_lock, pip_locks.docs_declaration_sha256(), pip_locks.refresh_command(pip_locks.DOCS)
            ),
            None,
            in_rc=True,
        ),
        # The model converter's tools (the converter image only): its converted files are locked in
        # lock/conversions.json, which records this lock's hash.
        LockKind(
            pip_locks.CONVERT,
            convert_lock,
            "converter/requirements.in",
            pip_locks.refresh_command(pip_locks.CONVERT),
            lambda p: _requirements_problems(
                convert_lock, pip_locks.convert_declaration_sha256(), pip_locks.refresh_command(pip_locks.CONVERT)
            ),
            "image-wheels",
            in_rc=True,
        ),
        # The models' converted files (after the convert lock: its hash is in every entry).
        LockKind(
            conversions.KIND,
            conversions.conversions_lock_path(),
            "each model's engines and Paddle files in pipelines/*/pipeline.toml, lock/requirements/convert.txt "
            "and converter/hps_convert.py",
            conversions.FREEZE,
            _conversions_problems,
            None,
            in_rc=True,
        ),
        # Triton's perf_analyzer: installed only into a host virtualenv of the serving bench.
        LockKind(
            pip_locks.PERF_ANALYZER,
            perf_lock,
            "bench/perf-analyzer.in",
            pip_locks.refresh_command(pip_locks.PERF_ANALYZER),
            lambda p: _requirements_problems(
                perf_lock,
                pip_locks.perf_analyzer_declaration_sha256(),
                pip_locks.refresh_command(pip_locks.PERF_ANALYZER),
            ),
            None,
            in_rc=True,
        ),
        LockKind(
            "host",
            pip_locks.host_lock_path(),
            "pyproject.toml (the host environment ./noxw installs)",
            HOST_REFRESH,
            lambda p: _requirements_problems(pip_locks.host_lock_path(), None, HOST_REFRESH),
            "host-wheels",
            frozen=False,
        ),
    ]


def select(project: Project, names: list[str]) -> list[LockKind]:
    """The locks a freeze re-resolves: the named ones (all that freeze writes when none is named)."""
    frozen = [kind for kind in kinds(project) if kind.frozen]
    if not names:
        return frozen
    known = {kind.name: kind for kind in frozen}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"unknown lock(s) {', '.join(unknown)}; freeze knows: {', '.join(known)}")
    return [kind for kind in frozen if kind.name in names]


def problems(project: Project) -> list[str]:
    """Every reason a lock under lock/ cannot be trusted, one line each with its fix."""
    return [problem for kind in kinds(project) for problem in kind.problems(project)]


def check(project: Project) -> None:
    """lock-check: every lock matches the declaration it was made from, and every pin is hashed."""
    found = problems(project)
    if found:
        raise StaleLockError(f"{len(found)} lock problem(s):\n  - " + "\n  - ".join(found))
