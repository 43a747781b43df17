"""`serve`/`deploy --engine`: the deployment's engine choice as the variables hps_server reads
(hps_server.engines), checked against the pipeline's declarations before anything starts."""

from __future__ import annotations

import re
from typing import get_args

from hpsforge.core.errors import UsageError
from hpsforge.core.pipelines import Engine, Pipeline

ENGINE_VARIABLE = "HPS_ENGINE"
ENGINES: tuple[str, ...] = get_args(Engine)


def variable(model: str) -> str:
    """The per-model variable (hps_server.engines.variable): HPS_ENGINE_TEXT_DETECTION."""
    return f"{ENGINE_VARIABLE}_{re.sub(r'[^A-Z0-9]', '_', model.upper())}"


def overrides(name: str, pipeline: Pipeline, values: list[str]) -> dict[str, str]:
    """The variables of `--engine ENGINE` (every model declaring it) and `--engine MODEL=ENGINE`
    (that model); a usage error for an unknown engine or model, or one a model does not declare."""
    models = {model.name: model for model in pipeline.models}
    environment: dict[str, str] = {}
    for value in values:
        model_name, _, engine = value.rpartition("=")
        if engine not in ENGINES:
            raise UsageError(f"--engine {value}: unknown engine {engine!r}", hint=f"one of {', '.join(ENGINES)}")
        if not model_name:
            declaring = [model.name for model in pipeline.models if engine in model.engines]
            if not declaring:
                raise UsageError(
                    f"--engine {engine}: no model of pipeline {name} declares engine {engine!r}",
                    hint=f"its models' engines are in pipelines/{name}/pipeline.toml ([[models]] engines)",
                )
            environment[ENGINE_VARIABLE] = engine
            continue
        model = models.get(model_name)
        if model is None:
            raise UsageError(
                f"--engine {value}: pipeline {name} has no model {model_name!r}",
                hint=f"its models: {', '.join(models)}",
            )
        if engine not in model.engines:
            raise UsageError(
                f"--engine {value}: model {model_name!r} does not declare engine {engine!r}",
                hint=f"its engines: {', '.join(model.engines)} (pipelines/{name}/pipeline.toml)",
            )
        environment[variable(model_name)] = engine
    return environment
