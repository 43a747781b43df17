"""lock-check: every lock matches the declaration it was made from, and every pin is hashed."""

from __future__ import annotations

from hpsforge import debian, models, pip_locks, rc, requirements_lock
from hpsforge.config import ProjectConfig
from hpsforge.errors import HpsforgeError
from hpsforge.pipelines import Pipeline

FREEZE = "nox -s freeze"


def _debian_problems(path, declared_sha256: str) -> list[str]:
    try:
        debian.DebianLock.read(path).require_fresh(path, declared_sha256)
    except HpsforgeError as error:
        return [str(error)]
    return []


def _requirements_problems(path, declared_sha256: str, refresh: str) -> list[str]:
    try:
        return requirements_lock.problems(requirements_lock.read(path), declared_sha256, refresh)
    except HpsforgeError as error:
        return [str(error)]


def problems(config: ProjectConfig, pipelines: dict[str, Pipeline]) -> list[str]:
    """Every reason a lock under lock/ cannot be trusted, one line each with its fix."""
    found = _debian_problems(debian.ENGINE_LOCK, config.engine.declaration_sha256())
    found += _debian_problems(debian.BASE_LOCK, config.base.declaration_sha256())
    found += _requirements_problems(rc.RC_LOCK, config.rc.declaration_sha256(), FREEZE)
    for target in config.targets:
        found += _requirements_problems(
            pip_locks.lock_path(target),
            pip_locks.declaration_sha256(config, pipelines, target),
            pip_locks.refresh_command(target),
        )
    found += _requirements_problems(pip_locks.lock_path(pip_locks.CLIENT), pip_locks.client_declaration_sha256(),
                                    pip_locks.refresh_command(pip_locks.CLIENT))
    if models.pypi_sources(pipelines):
        found += _requirements_problems(models.MODEL_SOURCES_LOCK, models.declaration_sha256(pipelines), FREEZE)
    return found


def check(config: ProjectConfig, pipelines: dict[str, Pipeline]) -> None:
    found = problems(config, pipelines)
    if found:
        raise HpsforgeError(f"{len(found)} lock problem(s):\n  - " + "\n  - ".join(found))
