"""lock-check: every lock matches the declaration it was made from, and every pin is hashed."""

from __future__ import annotations

from hpsforge import locks
from hpsforge.config import ProjectConfig
from hpsforge.errors import StaleLockError
from hpsforge.pipelines import Pipeline


def problems(config: ProjectConfig, pipelines: dict[str, Pipeline]) -> list[str]:
    """Every reason a lock under lock/ cannot be trusted, one line each with its fix."""
    return locks.problems(locks.Project(config, pipelines))


def check(config: ProjectConfig, pipelines: dict[str, Pipeline]) -> None:
    found = problems(config, pipelines)
    if found:
        raise StaleLockError(f"{len(found)} lock problem(s):\n  - " + "\n  - ".join(found))
