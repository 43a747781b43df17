"""`nox -s serve -- OCR`: start a pipeline's image and say where it answers."""

from __future__ import annotations

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bundle.client_sdk import ready
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import image_slug
from hpsforge.images import gpu, pipeline_images
from hpsforge.locks import images_lock

CONTAINER_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
# The state volume is the serving user's home: a fresh named volume takes the image's owner of
# that path (uid 1000), where a volume at a path the image lacks would be root's and unwritable.
STATE_IN_CONTAINER = "/home/triton"
READY_TIMEOUT_S = 300


def container_name(name: str, target: str) -> str:
    return f"hps-{image_slug(name)}-{target}"


def start(
    name: str,
    target: str,
    host: str,
    ports: dict[str, int],
    timeout_s: float = READY_TIMEOUT_S,
    image: str | None = None,
    engines: dict[str, str] | None = None,
) -> str:
    """Run `image` (default: the recorded image of `name` for `target`), wait until ready; its
    container name. `engines`: the HPS_ENGINE* variables of `--engine` (ship/engines.py)."""
    role = pipeline_images.role(name, target)
    record = images_lock.ImagesLock.read().images.get(role)
    if image is not None:
        record = images_lock.ImageRecord(reference=image, digest=image.rpartition("@")[2], input_sha256="")
    elif record is None:
        raise HpsforgeError(
            f"no {role} image is recorded in lock/images.lock.json", hint=f"build it with `nox -s images -- {target}`"
        )
    container = container_name(name, target)
    if docker.container.exists(container):
        raise HpsforgeError(
            f"a container named {container} exists already", hint=f"stop it with `docker rm -f {container}`"
        )
    print(f"hpsforge: starting {record.reference} as {container}", flush=True)
    try:
        docker.run(
            record.reference,
            detach=True,
            name=container,
            shm_size="256m",
            publish=[(f"{host}:{ports[kind]}", port) for kind, port in CONTAINER_PORTS.items()],
            volumes=[(f"{container}-state", STATE_IN_CONTAINER)],
            envs=dict(engines or {}),
        )
    except DockerException as error:
        raise HpsforgeError(f"cannot start {record.reference}: {(error.stderr or '').strip()[-400:]}") from None
    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        seconds = ready.wait_until(
            lambda: ready.http_ready(f"{address}:{ports['http']}"),
            timeout_s,
            interval=1.0,
            alive=lambda: bool(docker.container.inspect(container).state.running),  # None (unknown) is not running
        )
    except ready.NotReadyError as error:
        logs = docker.container.logs(container, tail=40)
        docker.container.remove(container, force=True)
        why = "exited" if error.reason == "exited" else f"was not ready after {timeout_s:.0f} s"
        raise HpsforgeError(f"{container} {why}; the end of its log:\n{logs}") from None
    chosen = ", ".join(f"{variable}={engine}" for variable, engine in sorted((engines or {}).items()))
    print(
        f"hpsforge: {name} ({target}) ready in {seconds:.1f} s"
        + (f" with {chosen}" if chosen else " on each model's default engine"),
        flush=True,
    )
    if cpu_only := (docker.image.inspect(record.reference).config.labels or {}).get(gpu.CPU_ONLY_LABEL):
        print(f"  on the CPU even with a GPU: {cpu_only} (no engine they declare has its GPU build in this image)")
    print(f"  HTTP     http://{host}:{ports['http']}   (e.g. /v2/models/<model>/infer)")
    print(f"  gRPC     {host}:{ports['grpc']}")
    print(f"  metrics  http://{host}:{ports['metrics']}/metrics")
    print(f"  stop with: docker rm -f {container}   (the state volume {container}-state is kept)")
    return container
