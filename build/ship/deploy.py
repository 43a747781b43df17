"""`nox -s deploy -- OCR --kubernetes [--kserve] [--policy --key PUB.pem]`: manifests that run a
pipeline image on a cluster.

output/deploy/<Name>/kubernetes/ holds a Deployment, a Service, a PodDisruptionBudget, a
HorizontalPodAutoscaler (when the pipeline may scale) and, for a pipeline with state, its
PersistentVolumeClaim; output/deploy/<Name>/kserve/ a KServe ServingRuntime and InferenceService
running the same image (and the same claim); with --policy, output/deploy/<Name>/policy/ the
admission policies that admit the image only when signed with the release key (ship/admission.py).
Every size comes from the pipeline's
DeployParameters (`[deploy]` in pipeline.toml, else their defaults), never from a branch on its
name. The bytes depend only on those inputs, and the folder is replaced only once all of it is
written, as `assemble` does.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hpsforge.bundle import model_repo
from hpsforge.core.config import load_config
from hpsforge.core.errors import HpsforgeError, UsageError
from hpsforge.core.pipelines import DeployParameters, Pipeline, StateVolume, image_slug
from hpsforge.core.reference import ImageReference
from hpsforge.core.settings import settings
from hpsforge.images import pipeline_images
from hpsforge.locks import images_lock
from hpsforge.ship import admission, serve

SERVING_ID = 1000  # uid and gid of the runtime image's serving user (dockerfiles/runtime.Dockerfile)
PORTS = serve.CONTAINER_PORTS  # http 8000, grpc 8001, metrics 8002: server.sh's defaults
STATE_DIR = "/home/triton/hps-state"  # the image's default HPS_STATE_DIR, here on the claim
# The python backend makes a directory per model under /tmp (it refuses to start without one), and
# Paddle moves its cache there when $HOME is read-only: both stay empty (measured), 64 MiB is slack.
TMP_MIB = 64

# Start to ready, measured with `docker run --read-only` and the mounts below (as tests/engine/
# test_deploy_readonly.py runs them): 4.0-12.7 s over about 30 starts of the four cpu pipelines on
# a shared 2-core host (load average up to 5), 10.5-11.6 s with a cold page cache and 1 CPU, and at
# worst 15.6 s (face_recognition, 2 CPUs). The startup probe allows 4x that worst (a node still
# reading a freshly pulled image, a busy neighbour); a slower pipeline sets `start_seconds`.
MEASURED_START_S = 16.0
START_MARGIN = 4
PROBE_PERIOD_S = 5
# Triton stops within server.sh's --exit-timeout-secs (25); Kubernetes waits this long before SIGKILL.
GRACE_S = 30

# /dev/shm for the python backend: each model instance starts with a 4 MiB region (server.sh's
# HPS_SHM_DEFAULT_BYTES) and grows it 4 MiB at a time to hold its batch's tensors; room is kept for
# one full dynamic batch of the largest requests hps_server accepts (HPS_MAX_REQUEST_BYTES, 16 MiB)
# per instance. Measured: 4 MiB (one model) to 24 MiB (face_recognition's four) under 32 concurrent
# golden requests. The volume is memory, so it is part of the memory limit too.
SHM_REGION_MIB = 4
MAX_REQUEST_MIB = 16
SHM_ROUND_MIB = 64

ADMIN_SECRET_KEY = "admin-key"
# Extra resources per device (cpu needs none).
DEVICE_RESOURCES = {"gpu": {"nvidia.com/gpu": "1"}}


def device_of(target: str) -> str:
    """The device a target's pods serve on: gpu for a target with a CUDA stack (gpu, gpu-cu12)."""
    return "gpu" if load_config().target(target).cuda is not None else "cpu"


KSERVE_API = "serving.kserve.io"
KINDS = ("kubernetes", "kserve")


@dataclass(frozen=True)
class Sizing:
    """What one pod gets, worked out from DeployParameters and the model repository."""

    cpu: int  # cores, requested and limited alike
    memory_mib: int  # the working set plus /dev/shm (memory-backed, so counted against the limit)
    shm_mib: int
    startup_failures: int  # startup probe failures allowed, PROBE_PERIOD_S apart

    @classmethod
    def of(cls, name: str, params: DeployParameters) -> Sizing:
        shm = params.shm_mib or shm_mib(name, params.instances)
        start = params.start_seconds or MEASURED_START_S
        return cls(
            cpu=params.instances * params.cpu_threads,
            memory_mib=params.instances * params.memory_mib + shm,
            shm_mib=shm,
            startup_failures=math.ceil(start * START_MARGIN / PROBE_PERIOD_S),
        )


def shm_mib(name: str, instances: int) -> int:
    """/dev/shm for the pipeline's python-backend models, from their configs (see SHM_REGION_MIB)."""
    regions, batch = 0, 1
    for folder in model_repo.models_in(settings().pipelines_dir / name / "server" / "model_repo"):
        config = model_repo.read_config(folder / "config.pbtxt")
        if model_repo.is_ensemble(config):
            continue  # an ensemble has no process of its own
        regions += instances
        batch = max(batch, config.max_batch_size)  # 0 (unset): no batching, one request at a time
    needed = regions * SHM_REGION_MIB + instances * batch * MAX_REQUEST_MIB
    return SHM_ROUND_MIB * math.ceil(needed / SHM_ROUND_MIB)


def check_image(reference: str) -> str:
    """A cluster runs exactly the image built only when it names it by digest."""
    hint = (
        "give REPOSITORY@sha256:<64 hex digits>, e.g. registry.example:5000/hps/ocr-cpu@sha256:..."
        " (`docker buildx imagetools inspect REF` prints an image's digest)"
    )
    try:
        digest = ImageReference.parse(reference).digest
    except UsageError as error:
        raise UsageError(f"--image {reference}: not a digest reference ({error.message})", hint=hint) from None
    if digest is None:
        raise UsageError(f"--image {reference}: not a digest reference (it names no digest)", hint=hint)
    return reference


def recorded_image(name: str, target: str, images: images_lock.ImagesLock | None = None) -> str:
    """The pipeline image recorded in lock/images.lock.json, as `<repository>@sha256:...`: where it
    was pushed (`images --push`) if it was, else its local name."""
    role = pipeline_images.role(name, target)
    record = (images or images_lock.ImagesLock.read()).images.get(role)
    if record is None:
        raise HpsforgeError(
            f"no {role} image is recorded in {images_lock.images_lock_path()}",
            hint=f"build it with `nox -s images -- {target}`, or pass --image REPOSITORY@sha256:...",
        )
    if record.pushed:
        return record.pushed
    try:
        # The tag goes: the digest names the image.
        reference = replace(ImageReference.parse(record.reference), tag=None, digest=record.digest)
    except UsageError as error:
        hint = f"rebuild it with `nox -s images -- {target}`, or pass --image REPOSITORY@sha256:..."
        raise HpsforgeError(
            f"{images_lock.images_lock_path()}: {role} is recorded as {record.reference} "
            f"({record.digest}), not a digest reference: {error.message}",
            hint=hint,
        ) from None
    return str(reference)


def has_registry(reference: str) -> bool:
    return ImageReference.parse(reference).registry is not None


Manifest = dict[str, Any]  # a Kubernetes object (or a part of one), as YAML writes it


def _labels(slug: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"hps-{slug}",
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/part-of": "hpsforge",
        "app.kubernetes.io/managed-by": "hpsforge",
    }


def _selector(slug: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"hps-{slug}"}


def _metadata(name: str, slug: str) -> Manifest:
    return {"name": name, "labels": _labels(slug)}


def _get(path: str) -> Manifest:
    return {"httpGet": {"path": path, "port": "http"}}


def _container(
    container_name: str,
    image: str,
    slug: str,
    target: str,
    params: DeployParameters,
    sizing: Sizing,
    engines: dict[str, str] | None = None,
) -> Manifest:
    env: list[Manifest] = []
    env.append({"name": "HPS_DEVICE", "value": device_of(target)})
    # The sizing, handed over by name only: HPS_CPU_THREADS is read by hps_server (unset, it counts
    # the node's cores, not this pod's); HPS_INSTANCES is the instance count per model the CPU was
    # sized for (the shipped configs run one, the default).
    env += [
        {"name": "HPS_CPU_THREADS", "value": str(params.cpu_threads)},
        {"name": "HPS_INSTANCES", "value": str(params.instances)},
        {
            "name": "HPS_ADMIN_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"hps-{slug}-admin-key", "key": ADMIN_SECRET_KEY}},
        },
    ]
    # The deployment's engine choice (`--engine`), read by hps_server when each model loads.
    env += [{"name": variable, "value": engine} for variable, engine in sorted((engines or {}).items())]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "dshm", "mountPath": "/dev/shm"}]
    if params.state:
        env.append({"name": "HPS_STATE_DIR", "value": STATE_DIR})
        mounts.append({"name": "state", "mountPath": STATE_DIR})
    amounts = {"cpu": str(sizing.cpu), "memory": f"{sizing.memory_mib}Mi"}
    return {
        "name": container_name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": kind, "containerPort": port, "protocol": "TCP"} for kind, port in PORTS.items()],
        "env": env,
        # Requests equal limits: the Guaranteed class, and the CPU the threads were sized for.
        "resources": {"requests": dict(amounts), "limits": {**amounts, **DEVICE_RESOURCES.get(device_of(target), {})}},
        # Ready means every model is loaded, so it also ends the start; liveness only after that.
        "startupProbe": {
            **_get("/v2/health/ready"),
            "periodSeconds": PROBE_PERIOD_S,
            "timeoutSeconds": 2,
            "failureThreshold": sizing.startup_failures,
        },
        "readinessProbe": {**_get("/v2/health/ready"), "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {**_get("/v2/health/live"), "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "securityContext": {
            "runAsUser": SERVING_ID,
            "runAsGroup": SERVING_ID,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            # Proven by tests/engine/test_deploy_readonly.py: with /tmp, /dev/shm (and the state
            # claim) mounted, nothing else is written.
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _pod_security() -> Manifest:
    # fsGroup makes a fresh claim writable by the serving user; OnRootMismatch skips the re-chown
    # of a full index on every start.
    return {
        "runAsUser": SERVING_ID,
        "runAsGroup": SERVING_ID,
        "runAsNonRoot": True,
        "fsGroup": SERVING_ID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volumes(slug: str, params: DeployParameters, sizing: Sizing) -> list[Manifest]:
    volumes = [
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_MIB}Mi"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{sizing.shm_mib}Mi"}},
    ]
    if params.state:
        volumes.append({"name": "state", "persistentVolumeClaim": {"claimName": f"hps-{slug}-state"}})
    return volumes


def _scales(params: DeployParameters) -> bool:
    return params.max_replicas > params.min_replicas


def _pod_spec(containers: list[Manifest], slug: str, params: DeployParameters, sizing: Sizing) -> Manifest:
    spec: Manifest = {
        # The server needs no Kubernetes API; service links would put HPS_<SERVICE>_PORT=tcp://...
        # variables into an environment whose HPS_* names the server reads.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACE_S,
        "securityContext": _pod_security(),
        "containers": containers,
        "volumes": _volumes(slug, params, sizing),
    }
    if params.max_replicas > 1:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(slug)},
            }
        ]
    return spec


def _claim(slug: str, state: StateVolume) -> Manifest:
    spec: Manifest = {"accessModes": [state.access_mode], "resources": {"requests": {"storage": state.size}}}
    if state.storage_class:
        spec["storageClassName"] = state.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(f"hps-{slug}-state", slug),
        "spec": spec,
    }


def _strategy(params: DeployParameters) -> Manifest:
    if params.state and params.state.access_mode != "ReadWriteMany":
        return {"type": "Recreate"}  # the old pod must let go of the volume before the new one mounts it
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def kubernetes_manifests(
    name: str, params: DeployParameters, target: str, image: str, engines: dict[str, str] | None = None
) -> dict[str, Manifest]:
    slug, sizing = image_slug(name), Sizing.of(name, params)
    full = f"hps-{slug}"
    deployment_spec: Manifest = {
        "selector": {"matchLabels": _selector(slug)},
        "strategy": _strategy(params),
        "template": {
            "metadata": {
                "labels": _labels(slug),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(PORTS["metrics"]),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": _pod_spec(
                [_container("server", image, slug, target, params, sizing, engines)], slug, params, sizing
            ),
        },
    }
    if not _scales(params):
        # With an autoscaler the count is its to set (Kubernetes' advice: leave replicas out, or
        # every apply resets it).
        deployment_spec = {"replicas": params.min_replicas, **deployment_spec}
    documents = {
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(full, slug),
            "spec": deployment_spec,
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(full, slug),
            "spec": {
                "type": "ClusterIP",
                "selector": _selector(slug),
                "ports": [
                    {
                        "name": kind,
                        "port": port,
                        "targetPort": kind,
                        "protocol": "TCP",
                        **({"appProtocol": "kubernetes.io/h2c"} if kind == "grpc" else {}),
                    }
                    for kind, port in PORTS.items()
                ],
            },
        },
        # One pod at a time may go (a node drain), whatever the count: with two or more, one serves.
        "poddisruptionbudget.yaml": {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _metadata(full, slug),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(slug)}},
        },
    }
    if _scales(params):
        documents["horizontalpodautoscaler.yaml"] = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _metadata(full, slug),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": full},
                "minReplicas": params.min_replicas,
                "maxReplicas": params.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": params.target_cpu_utilization},
                        },
                    }
                ],
            },
        }
    if params.state:
        documents["persistentvolumeclaim.yaml"] = _claim(slug, params.state)
    return documents


def kserve_manifests(
    name: str, params: DeployParameters, target: str, image: str, engines: dict[str, str] | None = None
) -> dict[str, Manifest]:
    """A ServingRuntime that runs the image (the models are in it: no storageUri) and an
    InferenceService of it, in KServe's Standard (raw Deployment) mode, which serves all three ports."""
    slug, sizing = image_slug(name), Sizing.of(name, params)
    full = f"hps-{slug}"
    model_format = f"hpsforge-{slug}"
    runtime_spec = {
        "supportedModelFormats": [{"name": model_format, "version": "1", "autoSelect": True}],
        "protocolVersions": ["v2", "grpc-v2"],
        "annotations": {"prometheus.kserve.io/port": str(PORTS["metrics"]), "prometheus.kserve.io/path": "/metrics"},
        # KServe's Service sends port 80 to the first port (http) and keeps the others as they are.
        "containers": [_container("kserve-container", image, slug, target, params, sizing, engines)],
        "volumes": _volumes(slug, params, sizing),
    }
    pod = _pod_spec([], slug, params, sizing)
    predictor = {
        "model": {"modelFormat": {"name": model_format, "version": "1"}, "runtime": full, "protocolVersion": "v2"},
        "minReplicas": params.min_replicas,
        "maxReplicas": params.max_replicas,
        **{
            key: pod[key]
            for key in (
                "automountServiceAccountToken",
                "enableServiceLinks",
                "terminationGracePeriodSeconds",
                "securityContext",
            )
        },
        "deploymentStrategy": _strategy(params),
    }
    if "topologySpreadConstraints" in pod:
        predictor["topologySpreadConstraints"] = pod["topologySpreadConstraints"]
    annotations = {f"{KSERVE_API}/deploymentMode": "Standard"}
    if _scales(params):
        predictor.update(
            {"scaleMetric": "cpu", "scaleMetricType": "Utilization", "scaleTarget": params.target_cpu_utilization}
        )
    else:
        annotations[f"{KSERVE_API}/autoscalerClass"] = "none"  # a fixed count: no autoscaler
    documents = {
        "servingruntime.yaml": {
            "apiVersion": f"{KSERVE_API}/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": _metadata(full, slug),
            "spec": runtime_spec,
        },
        "inferenceservice.yaml": {
            "apiVersion": f"{KSERVE_API}/v1beta1",
            "kind": "InferenceService",
            "metadata": {**_metadata(full, slug), "annotations": annotations},
            "spec": {"predictor": predictor},
        },
    }
    if params.state:
        documents["persistentvolumeclaim.yaml"] = _claim(slug, params.state)  # the same claim: the index follows
    return documents


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a PEM key) as literal blocks, which read as the file they came from."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _string)


def _yaml(document: Manifest, command: str) -> str:
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )
    return f"# Written by `{command}`: regenerate it rather than edit it.\n{body}"


README = """# {name} on Kubernetes (hpsforge)

Image: `{image}`
Written by `{command}`; regenerate it rather than edit it.

Per pod: {cpu} CPU (HPS_INSTANCES={instances} x HPS_CPU_THREADS={threads}), {memory} MiB memory
(/dev/shm {shm} MiB of it), replicas {replicas}. The sizes come from `[deploy]` in
pipelines/{name}/pipeline.toml (schema: DeployParameters in build/pipelines.py).

1. The admin key of Triton's restricted APIs (loading models, shared memory, logging, trace). The
   pod does not start until this Secret exists:

       kubectl create secret generic hps-{slug}-admin-key \\
           --from-literal={key}="$(head -c 32 /dev/urandom | base64 | tr -d '\\n')"

2. Apply {apply}:

{commands}
3. Check it with the conformance suite:

       kubectl port-forward service/{service} 8001:8001 8002:8002
       ./noxw -s conformance -- {name} --url 127.0.0.1:8000
{policy}"""
POLICY_README = """
Admission: before step 2, apply the policy of the admission controller your cluster runs (policy/
holds the same rule for both). It admits an image of `{repository}` (any tag or digest)
only when its sigstore signature verifies with the release key `{key}`
(sha256 of the key: {fingerprint}):

       kubectl apply -f policy/clusterimagepolicy.yaml     # sigstore policy-controller: namespaces
                                                           # labelled policy.sigstore.dev/include=true
       kubectl apply -f policy/kyverno-clusterpolicy.yaml  # Kyverno: verifyImages, Enforce
"""
APPLY = {
    "kubernetes": "       kubectl apply -f kubernetes/     # service/hps-{slug}: http 8000, grpc 8001, metrics 8002\n",
    "kserve": "       kubectl apply -f kserve/         # KServe (Standard mode); service/hps-{slug}-predictor: "
    "http on 80, grpc 8001, metrics 8002\n",
}


def render(
    name: str,
    pipeline: Pipeline,
    target: str,
    image: str,
    kinds: tuple[str, ...],
    command: str,
    key: admission.ReleaseKey | None = None,
    engines: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every file of output/deploy/<name>/, by relative path; with `key`, the admission policies too;
    `engines` the HPS_ENGINE* variables of `--engine`."""
    params, sizing = pipeline.deploy, Sizing.of(name, pipeline.deploy)
    builders = {"kubernetes": kubernetes_manifests, "kserve": kserve_manifests}
    files = {}
    for kind in kinds:
        for filename, document in builders[kind](name, params, target, image, engines).items():
            files[f"{kind}/{filename}"] = _yaml(document, command)
    policy = ""
    if key is not None:
        for filename, document in admission.policy_manifests(name, image, key).items():
            files[f"policy/{filename}"] = _yaml(document, command)
        policy = POLICY_README.format(
            repository=admission.repository(image).name, key=key.path.name, fingerprint=key.fingerprint
        )
    replicas = (
        f"{params.min_replicas}-{params.max_replicas} (CPU autoscaled at {params.target_cpu_utilization}%)"
        if _scales(params)
        else str(params.min_replicas)
    )
    slug = image_slug(name)
    files["README.md"] = README.format(
        name=name,
        slug=slug,
        image=image,
        command=command,
        apply="one of these (two ways to run the same pods, not both at once)" if len(kinds) > 1 else "it",
        commands="".join(APPLY[kind].format(slug=slug) for kind in kinds),
        service=f"hps-{slug} 8000:8000" if "kubernetes" in kinds else f"hps-{slug}-predictor 8000:80",
        cpu=sizing.cpu,
        instances=params.instances,
        threads=params.cpu_threads,
        memory=sizing.memory_mib,
        shm=sizing.shm_mib,
        replicas=replicas,
        key=ADMIN_SECRET_KEY,
        policy=policy,
    )
    return dict(sorted(files.items()))


def _engine_arguments(engines: dict[str, str] | None) -> list[str]:
    """The `--engine` values that give these variables (for the command the manifests name)."""
    values = []
    for variable, engine in sorted((engines or {}).items()):
        model = variable.removeprefix("HPS_ENGINE").removeprefix("_").lower()
        values.append(f"{model}={engine}" if model else engine)
    return values


def write(name: str, files: dict[str, str], output_dir: Path | None = None) -> Path:
    """Write output_dir/<name>/; the previous folder stays until every file of the new one is written."""
    output_dir = output_dir or settings().output_dir / "deploy"
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / name
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=output_dir) as tmp:
        staging = Path(tmp) / name
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            path.chmod(0o644)
        if final.exists():
            os.replace(final, Path(tmp) / "previous")
        os.replace(staging, final)
    return final


def deploy(
    name: str,
    pipeline: Pipeline,
    target: str,
    kinds: tuple[str, ...],
    image: str | None = None,
    output_dir: Path | None = None,
    key: admission.ReleaseKey | None = None,
    engines: dict[str, str] | None = None,
) -> Path:
    """`nox -s deploy`: write output/deploy/<name>/ for `image` (default: the recorded digest), with
    the admission policies for `key` when given; say what it holds."""
    given = image is not None
    image = check_image(image) if image is not None else recorded_image(name, target)
    command = " ".join(
        [
            "nox -s deploy --",
            name,
            *(f"--{kind}" for kind in kinds),
            *(["--policy", "--key", str(key.path)] if key is not None else []),
            *(["--image", image] if given else []),
            *(["--target", target] if target != "cpu" else []),
            *(f"--engine {value}" for value in _engine_arguments(engines)),
        ]
    )
    folder = write(name, render(name, pipeline, target, image, kinds, command, key, engines), output_dir)
    print(f"hpsforge: {name}: wrote {folder}/ ({image})", flush=True)
    for path in sorted(folder.rglob("*.yaml")):
        print(f"  {path.relative_to(folder)}")
    if key is not None:
        print(f"  policy/: admits {admission.repository(image).name} signed by {key.path} (sha256 {key.fingerprint})")
    if not has_registry(image):
        print(
            f"  note: {image} names no registry, so a cluster would pull it from Docker Hub: push it "
            "and pass --image REGISTRY/...@sha256:...",
            flush=True,
        )
    return folder
