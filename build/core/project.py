"""The project one command works on: hpsforge.toml and every pipeline.toml, loaded once."""

from __future__ import annotations

from dataclasses import dataclass

from hpsforge.core.config import ProjectConfig, load_config
from hpsforge.core.pipelines import Pipeline, load_pipelines


@dataclass(frozen=True)
class Project:
    """The declarations every lock is resolved from and every image is built from."""

    config: ProjectConfig
    pipelines: dict[str, Pipeline]

    @classmethod
    def load(cls) -> Project:
        """hpsforge.toml and pipelines/ as the settings name them; a bad file is a UsageError."""
        return cls(load_config(), load_pipelines())
