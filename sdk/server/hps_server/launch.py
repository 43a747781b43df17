"""How many model instances, and how many Paddle threads each: chosen when the server starts, from
the CPUs this container may actually use, and written into the model repository Triton serves.

    python3 -m hps_server.launch BUNDLE_ROOT DEVICE OUT_DIR    # prints the repository to serve

The CPUs: the scheduler affinity (`docker run --cpuset-cpus`, Kubernetes' static CPU manager)
and the cgroup CPU quota (`docker run --cpus`, Kubernetes CPU limits: cgroup v2 cpu.max, or
v1 cpu.cfs_quota_us), rounded up; the host's count only when neither limits it. Each CPU model
gets one instance per CPU and one Paddle thread per instance (one request per instance at a time,
so per-request work that is mostly sequential, like OCR's, still uses every CPU), unless:

    HPS_INSTANCES=N      instances of every scaled model
    HPS_CPU_THREADS=N    Paddle threads per instance (default: CPUs / instances, at least 1)
    HPS_BURST=0          never give a request more than its instance's threads (see below)

A request that starts while no other instance of its model is executing may use every CPU: each
instance then keeps a second predictor with that many threads (hps_server.occupancy), and the
file in which the instances say they are busy is written here too.

and a model's config.pbtxt may pin its own count (an endpoint that is rarely called and heavy to
load, such as a face index's build, needs one): parameters { key: "hps_instances" value:
{ string_value: "1" } }, and refuse the burst (work of a millisecond, where a second thread's
start and OpenMP's spin-wait cost more CPU than they save): parameters { key: "hps_burst" value:
{ string_value: "0" } }. GPU models and ensembles are left as they are.

The repository written to OUT_DIR holds, per model, the device's config with those counts (and
the threads as the `hps_cpu_threads` parameter, which the runtime reads) and symbolic links to
the bundle's own version folders: nothing of the bundle is copied or changed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

INSTANCE_GROUP = re.compile(r"^instance_group\s*\[\s*\{\s*count:\s*\d+\s*,\s*kind:\s*(KIND_\w+)\s*\}\s*\]\s*$", re.MULTILINE)
PINNED = re.compile(r'key:\s*"hps_instances"\s*value:\s*\{\s*string_value:\s*"([^"]*)"')
NO_BURST = re.compile(r'key:\s*"hps_burst"\s*value:\s*\{\s*string_value:\s*"0"')
THREADS_PARAMETER = "hps_cpu_threads"
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Cpus:
    usable: int
    affinity: int
    quota: float | None  # CPUs the cgroup quota allows (None: no quota)

    def describe(self) -> str:
        quota = "no quota" if self.quota is None else f"quota {self.quota:g}"
        return f"{self.usable} CPU(s) (affinity {self.affinity}, {quota})"


def _quota(cgroup: Path) -> float | None:
    """CPUs the cgroup's quota allows: v2 cpu.max ("max 100000" or "150000 100000"), else v1."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup: Path = CGROUP) -> Cpus:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _quota(cgroup)
    usable = affinity if quota is None else min(affinity, max(1, math.ceil(quota - 1e-9)))
    return Cpus(max(1, usable), affinity, quota)


def _positive(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isdigit() and int(text) > 0):
        raise ValueError(f"{name} must be a positive integer, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class ModelPlan:
    name: str
    kind: str | None  # KIND_CPU, KIND_GPU; None: an ensemble (no instances of its own)
    instances: int
    threads: int | None
    burst: int | None = None  # threads of a request that runs alone (hps_server.occupancy)


def plan_model(name: str, config: str, cpus: int, instances: int | None, threads: int | None,
               burst: bool = True) -> ModelPlan:
    group = INSTANCE_GROUP.search(config)
    if group is None:
        return ModelPlan(name, None, 0, None)
    kind = group.group(1)
    if kind != "KIND_CPU":
        return ModelPlan(name, kind, 1, None)
    pinned = PINNED.search(config)
    count = _positive(f"{name}: parameter hps_instances", pinned.group(1)) if pinned else None
    count = count or instances or cpus
    planned = threads or max(1, cpus // count)
    # Threads given (HPS_CPU_THREADS) are taken as they are; else a request alone may use every CPU,
    # unless the model says it gains nothing from that (hps_burst "0").
    burst = burst and not threads and planned < cpus and not NO_BURST.search(config)
    return ModelPlan(name, kind, count, planned, cpus if burst else None)


def _parameter(key: str, value) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


def device_text(config: str, plan: ModelPlan, busy_file: Path | None = None) -> str:
    """The device config with the plan's instance count and thread parameters."""
    if plan.kind != "KIND_CPU":
        return config
    text = INSTANCE_GROUP.sub(f"instance_group [{{ count: {plan.instances}, kind: {plan.kind} }}]", config, count=1)
    if THREADS_PARAMETER not in text:
        text = text.rstrip() + "\n" + _parameter(THREADS_PARAMETER, plan.threads)
        if plan.burst and busy_file is not None:
            text += _parameter("hps_burst_threads", plan.burst) + _parameter("hps_busy_file", busy_file)
    return text


def write_repository(root: Path, device: str, out: Path, environ=os.environ, cpus: Cpus | None = None) -> tuple[Path, list[ModelPlan], Cpus]:
    """Write the repository to serve into `out` (replacing what was there); its path and plans."""
    cpus = cpus or usable_cpus()
    instances = _positive("HPS_INSTANCES", environ.get("HPS_INSTANCES"))
    threads = _positive("HPS_CPU_THREADS", environ.get("HPS_CPU_THREADS"))
    burst = environ.get("HPS_BURST", "1") != "0"
    source = root / "model_repo"
    repository = out / "model_repo"
    if out.exists():
        shutil.rmtree(out)
    repository.mkdir(parents=True)
    plans = []
    for model in sorted(path for path in source.iterdir() if (path / "config.pbtxt").is_file()):
        device_config = model / "configs" / f"{device}.pbtxt"
        config = (device_config if device_config.is_file() else model / "config.pbtxt").read_text(encoding="utf-8")
        plan = plan_model(model.name, config, cpus.usable, instances, threads, burst)
        target = repository / model.name
        target.mkdir()
        for entry in model.iterdir():
            if entry.name not in ("config.pbtxt", "configs"):
                (target / entry.name).symlink_to(entry.resolve())
        busy_file = None
        if plan.burst:  # one byte per instance: set while it executes (hps_server.occupancy)
            busy_file = out / "busy" / model.name
            busy_file.parent.mkdir(exist_ok=True)
            busy_file.write_bytes(bytes(plan.instances))
        (target / "config.pbtxt").write_text(device_text(config, plan, busy_file), encoding="utf-8")
        plans.append(plan)
    return repository, plans, cpus


def describe(plans: list[ModelPlan], cpus: Cpus) -> str:
    parts = [f"{plan.name}: {plan.instances} instance(s) x {plan.threads} thread(s)"
             + (f", {plan.burst} when it runs alone" if plan.burst else "") for plan in plans if plan.kind == "KIND_CPU"]
    return f"{cpus.describe()}; " + ("; ".join(parts) or "no CPU models")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python3 -m hps_server.launch BUNDLE_ROOT DEVICE OUT_DIR", file=sys.stderr)
        return 2
    root, device, out = Path(argv[0]), argv[1], Path(argv[2])
    try:
        repository, plans, cpus = write_repository(root, device, out)
    except ValueError as error:
        print(f"server.sh: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"server.sh: cannot write the served model repository in {out} (HPS_RUNTIME_DIR): "
              f"{error.strerror}; give the container a writable volume there (with a read-only root "
              "file system: /tmp, which the python backend needs too)", file=sys.stderr)
        return 2
    print(f"server.sh: {describe(plans, cpus)}", file=sys.stderr)
    print(repository)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
