"""The Deployment `nox -s deploy` writes, run for real: each pipeline image started by `docker run`
with exactly its pod's constraints (read-only root filesystem, uid/gid 1000, no capabilities, no
privilege escalation, its emptyDirs as tmpfs, its claim as a group-writable bind mount, its CPU and
memory limits) must be ready within the startup probe's budget, answer the probes' paths, and pass
every golden case; and it must be unable to write anywhere but the volumes the manifest declares."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.bundle import goldens
from hpsforge.core.pipelines import image_slug, load_pipelines
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.images import pipeline_images
from hpsforge.inputs import model_files
from hpsforge.inputs.store import cache_root
from hpsforge.locks import images_lock
from hpsforge.ship import deploy
from tests.conformance import wire

PIPELINES = load_pipelines()
ADMIN_KEY = "deploy-test-admin-key"


def _mib(quantity: str) -> int:
    assert quantity.endswith("Mi"), f"{quantity}: the test reads sizes in Mi"
    return int(quantity.removesuffix("Mi"))


def _run_arguments(deployment: dict, volumes_dir: Path) -> dict:
    """python-on-whales `docker.run` arguments equal to the Deployment's pod, as far as Docker has them."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security, pod_security = container["securityContext"], pod["securityContext"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}  # Docker's default profile
    arguments = {
        "read_only": security["readOnlyRootFilesystem"],
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "groups_add": [str(pod_security["fsGroup"])],
        "cap_drop": security["capabilities"]["drop"],
        "security_options": [] if security["allowPrivilegeEscalation"] else ["no-new-privileges"],
        "cpus": float(container["resources"]["limits"]["cpu"]),
        "memory": f"{_mib(container['resources']['limits']['memory'])}m",
        "memory_swap": f"{_mib(container['resources']['limits']['memory'])}m",  # a pod has no swap
        "publish": [("127.0.0.1:", port["containerPort"]) for port in container["ports"]],
        "envs": {item["name"]: item.get("value", ADMIN_KEY) for item in container["env"]},
        "tmpfs": [],
        "mounts": [],
    }
    assert [item["valueFrom"]["secretKeyRef"]["key"] for item in container["env"] if "valueFrom" in item] == [
        "admin-key"
    ]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume and mount["mountPath"] == "/dev/shm":
            assert volume["emptyDir"]["medium"] == "Memory"
            arguments["shm_size"] = f"{_mib(volume['emptyDir']['sizeLimit'])}m"
        elif "emptyDir" in volume:  # kubelet makes it world-writable
            arguments["tmpfs"].append(
                f"{mount['mountPath']}:rw,size={_mib(volume['emptyDir']['sizeLimit'])}m,mode=1777"
            )
        elif "persistentVolumeClaim" in volume:
            # As kubelet leaves a claim with fsGroup: group-owned, setgid, group-writable.
            host = volumes_dir / mount["name"]
            host.mkdir()
            os.chown(host, 0, pod_security["fsGroup"])
            host.chmod(0o2770)
            arguments["mounts"].append(["type=bind", f"source={host}", f"target={mount['mountPath']}"])
        else:
            pytest.fail(f"volume {volume} has no Docker equivalent in this test yet: add one")
    return arguments


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def _exec(container: str, script: str) -> bool:
    try:
        docker.container.execute(container, ["sh", "-c", script])
        return True
    except DockerException:
        return False


@pytest.mark.parametrize("name", PIPELINES)
def test_the_deployment_runs_read_only_and_answers_its_goldens(name, cpu_images, tmp_path):
    role = pipeline_images.role(name, "cpu")
    image = deploy.recorded_image(name, "cpu", images_lock.ImagesLock(images={role: cpu_images[role]}))
    files = deploy.render(name, PIPELINES[name], "cpu", image, ("kubernetes",), "test")
    deployment = yaml.safe_load(files["kubernetes/deployment.yaml"])
    (spec,) = deployment["spec"]["template"]["spec"]["containers"]
    arguments = _run_arguments(deployment, tmp_path)
    container = f"hps-deploy-test-{image_slug(name)}"
    if docker.container.exists(container):
        docker.container.remove(container, force=True)
    started = time.monotonic()
    docker.run(image, detach=True, name=container, **arguments)
    try:
        ports = docker.container.inspect(container).network_settings.ports
        http = f"127.0.0.1:{ports['8000/tcp'][0]['HostPort']}"
        startup = spec["startupProbe"]
        budget = startup.get("initialDelaySeconds", 0) + startup["failureThreshold"] * startup["periodSeconds"]
        while _status(f"http://{http}{startup['httpGet']['path']}") != 200:
            if not docker.container.inspect(container).state.running:
                pytest.fail(
                    f"{name} exited under the Deployment's constraints:\n{docker.container.logs(container, tail=40)}"
                )
            if time.monotonic() - started > budget:
                pytest.fail(
                    f"{name} was not ready within the startup probe's {budget} s "
                    "(MEASURED_START_S x START_MARGIN in build/ship/deploy.py):\n"
                    f"{docker.container.logs(container, tail=40)}"
                )
            time.sleep(0.5)
        print(f"{name}: ready in {time.monotonic() - started:.1f} s under the Deployment's limits (budget {budget} s)")
        for probe in ("readinessProbe", "livenessProbe"):
            assert _status(f"http://{http}{spec[probe]['httpGet']['path']}") == 200, probe

        pipeline_dir = PROJECT_ROOT / "pipelines" / name
        fixtures = None
        if PIPELINES[name].fixtures:
            fixtures = cache_root() / "fixtures" / name
            model_files.extract(name, PIPELINES[name].fixtures, fixtures)
        saved, failures = {}, []
        for case in goldens.load(pipeline_dir):
            status, envelope = wire.infer(
                http, case.model, goldens.resolve(case.request, pipeline_dir / "goldens", fixtures, saved)
            )
            if status != 200:
                envelope = {"errorCode": None, "errorMsg": f"HTTP {status}: {json.dumps(envelope)[:300]}"}
            failures += [f"{case.name}: {problem}" for problem in goldens.problems(case, envelope)]
            goldens.remember(case, envelope, saved)
        assert not failures, f"{name} under the Deployment's constraints:\n  " + "\n  ".join(failures)

        # Nothing but the declared volumes takes a write.
        for path in ("/opt/hps/server", "/home/triton", "/var/tmp", "/"):
            assert not _exec(container, f"touch {path}/deploy-probe"), f"{path} is writable: the root is not read-only"
        for mount in spec["volumeMounts"]:
            assert _exec(container, f"touch {mount['mountPath']}/deploy-probe"), f"{mount['mountPath']} is not writable"
        if PIPELINES[name].deploy.state:
            stored = sorted(path.name for path in (tmp_path / "state").rglob("*.face"))
            assert stored, f"{name}: the goldens saved no index onto the claim ({deploy.STATE_DIR})"
    finally:
        docker.container.remove(container, force=True)


def test_without_its_tmp_volume_the_read_only_server_cannot_start(cpu_images, tmp_path):
    """The other side of the proof: the root really is read-only, and /tmp is the volume it needs
    (server.sh writes the served repository there; the python backend a directory per model)."""
    name = "image_classification"
    role = pipeline_images.role(name, "cpu")
    image = deploy.recorded_image(name, "cpu", images_lock.ImagesLock(images={role: cpu_images[role]}))
    deployment = yaml.safe_load(
        deploy.render(name, PIPELINES[name], "cpu", image, ("kubernetes",), "test")["kubernetes/deployment.yaml"]
    )
    (spec,) = deployment["spec"]["template"]["spec"]["containers"]
    spec["volumeMounts"] = [mount for mount in spec["volumeMounts"] if mount["mountPath"] != "/tmp"]
    container = f"hps-deploy-test-{image_slug(name)}-no-tmp"
    if docker.container.exists(container):
        docker.container.remove(container, force=True)
    docker.run(image, detach=True, name=container, **_run_arguments(deployment, tmp_path))
    try:
        deadline = time.monotonic() + 120
        while docker.container.inspect(container).state.running and time.monotonic() < deadline:
            time.sleep(0.5)
        logs = docker.container.logs(container)
        assert not docker.container.inspect(container).state.running, f"it kept running without /tmp:\n{logs[-2000:]}"
        assert "cannot write the served model repository in /tmp/hps-server" in logs, logs[-2000:]
        assert "Read-only file system" in logs, logs[-2000:]
    finally:
        docker.container.remove(container, force=True)
