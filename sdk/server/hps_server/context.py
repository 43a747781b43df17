"""What a model instance knows about where and how it serves: built once, in `initialize`."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pydantic

M = TypeVar("M", bound=pydantic.BaseModel)

PIPELINE_CONFIG = "pipeline.toml"


def _default_threads() -> int:
    # Paddle's CPU math threads when neither server.sh's plan nor HPS_CPU_THREADS says: the CPUs
    # this process may use (quota and affinity, not the host's count), up to 4.
    from hps_server.launch import usable_cpus

    return max(1, min(4, usable_cpus().usable))


def _origins(text: str) -> frozenset[str]:
    """scheme://host[:port] of each allow-list entry (paths are ignored: origins are what is trusted)."""
    origins = set()
    for entry in filter(None, (part.strip() for part in text.split(","))):
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"HPS_URL_ALLOWLIST entry {entry!r} is not an http(s) origin")
        origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return frozenset(origins)


@dataclass(frozen=True)
class ServerContext:
    root: Path
    model_name: str
    device: str = "cpu"
    device_id: int = 0
    threads: int = field(default_factory=_default_threads)
    settings: dict = field(default_factory=dict)
    # pipeline.toml's [[models]] entries by name: the engines each declares and its default.
    models: dict = field(default_factory=dict)
    state_dir: Path = Path.home() / "hps-state"
    url_allowlist: frozenset[str] = frozenset()
    # Threads a request may use when no other instance of the model is executing (hps_server.occupancy),
    # and the file where the instances say they are; both written by server.sh's plan.
    burst_threads: int | None = None
    busy_file: Path | None = None
    instance_name: str = ""

    @classmethod
    def from_triton_args(cls, args: dict) -> "ServerContext":
        """From the python backend's initialize() arguments and the HPS_* environment."""
        model_dir = Path(args["model_repository"])
        root = Path(os.environ.get("HPS_SERVER_ROOT") or model_dir.parent.parent)
        config_path = root / PIPELINE_CONFIG
        document: dict = {}
        if config_path.exists():
            try:
                with open(config_path, "rb") as stream:
                    document = tomllib.load(stream)
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"{config_path}: not valid TOML: {error}") from None
        settings = document.get("settings", {})
        models = {entry["name"]: entry for entry in document.get("models", []) if "name" in entry}
        # Paddle threads: what server.sh planned for this model (hps_server.launch writes it as the
        # hps_cpu_threads parameter of its config), else HPS_CPU_THREADS, else all cores up to 4.
        threads, source = os.environ.get("HPS_CPU_THREADS"), "HPS_CPU_THREADS"
        try:
            parameters = json.loads(args.get("model_config") or "{}").get("parameters") or {}
        except ValueError:
            parameters = {}
        if planned := (parameters.get("hps_cpu_threads") or {}).get("string_value"):
            threads, source = planned, "the hps_cpu_threads parameter"
        if threads is not None and not (threads.isdigit() and int(threads) > 0):
            raise ValueError(f"{source} must be a positive integer, not {threads!r}")
        burst = (parameters.get("hps_burst_threads") or {}).get("string_value")
        if burst is not None and not (burst.isdigit() and int(burst) > 0):
            raise ValueError(f"the hps_burst_threads parameter must be a positive integer, not {burst!r}")
        busy_file = (parameters.get("hps_busy_file") or {}).get("string_value")
        return cls(
            root=root,
            model_name=args["model_name"],
            device="gpu" if args.get("model_instance_kind") == "GPU" else "cpu",
            device_id=int(args.get("model_instance_device_id") or 0),
            threads=int(threads) if threads else _default_threads(),
            settings=settings,
            models=models,
            state_dir=Path(os.environ.get("HPS_STATE_DIR") or Path.home() / "hps-state"),
            url_allowlist=_origins(os.environ.get("HPS_URL_ALLOWLIST", "")),
            burst_threads=int(burst) if burst else None,
            busy_file=Path(busy_file) if busy_file else None,
            instance_name=str(args.get("model_instance_name") or ""),
        )

    def occupancy_allows_burst(self) -> bool:
        return bool(self.device == "cpu" and self.busy_file and self.burst_threads and self.burst_threads > self.threads)

    def occupancy(self):
        """The instances' occupancy (hps_server.occupancy) when this model may burst, else IDLE."""
        from hps_server import occupancy

        if not self.occupancy_allows_burst():
            return occupancy.IDLE
        return occupancy.Occupancy(self.busy_file, occupancy.instance_slot(self.instance_name))

    def model_dir(self, artifact: str) -> Path:
        """Where the verified files of a pipeline's model artifact are served from."""
        path = self.root / "models" / artifact
        if not path.is_dir():
            raise FileNotFoundError(f"model files of {artifact!r} are missing: {path} does not exist")
        return path

    def predictor(self, artifact: str, **options):
        """The predictor of a model artifact (hps_server.engines.Predictor: `run(batch) -> output`)
        on the engine the deployment chose for it; options (files, onednn, ir_optim) are Paddle's."""
        from hps_server import engines

        return engines.load(self, artifact, **options)

    def settings_as(self, model: type[M]) -> M:
        """The pipeline's [settings], validated (a bad value stops the model from loading)."""
        try:
            return model.model_validate(self.settings)
        except pydantic.ValidationError as error:
            raise ValueError(f"{self.root / PIPELINE_CONFIG} [settings]: {error}") from None

    def url_allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.lower()}" in self.url_allowlist
