"""`nox -s deploy`: the manifests are valid Kubernetes and KServe objects (checked offline against
their schemas), say what the pipeline needs, and come out byte-identical on every run."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpsforge import cli
from hpsforge.core.errors import HpsforgeError, UsageError
from hpsforge.core.pipelines import DeployParameters, load_pipeline, load_pipelines
from hpsforge.locks import images_lock
from hpsforge.ship import deploy
from tests.support import manifests

PIPELINES = load_pipelines()
STATEFUL = {name for name, pipeline in PIPELINES.items() if pipeline.deploy.state}
IMAGE = "registry.example:5000/hps/ocr-cpu@sha256:" + "ab" * 32
BOTH = ("kubernetes", "kserve")


def _documents(name: str, kinds=BOTH, image: str = IMAGE, pipeline=None) -> dict[str, dict]:
    files = deploy.render(name, pipeline or PIPELINES[name], "cpu", image, kinds, "nox -s deploy -- test")
    return {path: yaml.safe_load(text) for path, text in files.items() if path.endswith(".yaml")}


def _container(document: dict) -> dict:
    spec = document["spec"]
    return (spec["template"]["spec"] if "template" in spec else spec)["containers"][0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_stateful_pipelines_are_declared():
    assert STATEFUL == {"face_recognition"}  # the face index; pipelines/*/pipeline.toml [deploy]


@pytest.mark.parametrize("kubernetes_version", manifests.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", PIPELINES)
def test_every_manifest_validates(name, kubernetes_version):
    files = deploy.render(name, PIPELINES[name], "cpu", IMAGE, BOTH, "nox -s deploy -- test")
    checked = {
        path: manifests.validate_text(text, kubernetes_version)
        for path, text in files.items()
        if path.endswith(".yaml")
    }
    kinds = {path: yaml.safe_load(files[path])["kind"] for path in checked}
    expected = {
        "kubernetes/deployment.yaml": "Deployment",
        "kubernetes/service.yaml": "Service",
        "kubernetes/poddisruptionbudget.yaml": "PodDisruptionBudget",
        "kserve/servingruntime.yaml": "ServingRuntime",
        "kserve/inferenceservice.yaml": "InferenceService",
    }
    if name in STATEFUL:
        expected |= {
            "kubernetes/persistentvolumeclaim.yaml": "PersistentVolumeClaim",
            "kserve/persistentvolumeclaim.yaml": "PersistentVolumeClaim",
        }
    else:
        expected["kubernetes/horizontalpodautoscaler.yaml"] = "HorizontalPodAutoscaler"
    assert kinds == expected
    assert all(len(found) == 1 for found in checked.values())


def _tampered(document: dict, change) -> dict:
    copy = yaml.safe_load(yaml.safe_dump(document))
    change(copy)
    return copy


TAMPERINGS = {
    "port as a string": (
        "kubernetes/deployment.yaml",
        lambda d: _container(d)["ports"][0].update(containerPort="8000"),
    ),
    "misspelt field": (
        "kubernetes/deployment.yaml",
        lambda d: _container(d)["securityContext"].update(readOnlyRootFS=True),
    ),
    "no selector": ("kubernetes/deployment.yaml", lambda d: d["spec"].pop("selector")),
    "autoscaler without a maximum": ("kubernetes/horizontalpodautoscaler.yaml", lambda d: d["spec"].pop("maxReplicas")),
    "service port not a number": ("kubernetes/service.yaml", lambda d: d["spec"]["ports"][0].update(port="http")),
    "predictor field misspelt": ("kserve/inferenceservice.yaml", lambda d: d["spec"]["predictor"].update(minReplica=1)),
    "unknown scale metric": (
        "kserve/inferenceservice.yaml",
        lambda d: d["spec"]["predictor"].update(scaleMetric="gpu"),
    ),
    "model format without a name": (
        "kserve/inferenceservice.yaml",
        lambda d: d["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
    ),
    "runtime without containers": ("kserve/servingruntime.yaml", lambda d: d["spec"].pop("containers")),
    "runtime container field misspelt": (
        "kserve/servingruntime.yaml",
        lambda d: _container(d).update(imagePullPolicies="Always"),
    ),
    "bad metadata field": ("kserve/servingruntime.yaml", lambda d: d["metadata"].update(label={"a": "b"})),
}


@pytest.mark.parametrize("what", TAMPERINGS)
def test_a_tampered_manifest_fails_validation(what):
    """The validation can fail: each of these breaks one field, and the error names it."""
    path, change = TAMPERINGS[what]
    document = _documents("OCR")[path]
    manifests.validate(document)  # the original passes
    with pytest.raises(manifests.ManifestInvalid) as caught:
        manifests.validate(_tampered(document, change))
    assert document["kind"] in str(caught.value)


def test_a_tampered_file_fails_validation():
    text = deploy.render("OCR", PIPELINES["OCR"], "cpu", IMAGE, BOTH, "x")["kubernetes/deployment.yaml"]
    manifests.validate_text(text)
    with pytest.raises(manifests.ManifestInvalid, match="containerPort"):
        manifests.validate_text(text.replace("containerPort: 8000", "containerPort: http", 1))


def test_an_unknown_kind_is_an_error_not_a_skip():
    with pytest.raises(manifests.ManifestInvalid, match="Couldn't find schema"):
        manifests.validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_vendored_crds_are_the_ones_the_readme_names():
    readme = (manifests.KSERVE_DIR / "README.md").read_text(encoding="utf-8")
    for filename in manifests.KSERVE_CRDS.values():
        digest = hashlib.sha256((manifests.KSERVE_DIR / filename).read_bytes()).hexdigest()
        assert re.search(
            rf"`{re.escape(filename)}`.*/v0\.20\.0/config/crd/full/{re.escape(filename)} \| `{digest}`", readme
        ), f"{filename}: sha256 {digest} is not the one tests/data/kserve/README.md names"


@pytest.mark.parametrize("name", PIPELINES)
def test_the_pod_is_locked_down_and_sized(name):
    params = PIPELINES[name].deploy
    documents = _documents(name)
    for path in ("kubernetes/deployment.yaml", "kserve/servingruntime.yaml"):
        container = _container(documents[path])
        assert container["image"] == IMAGE
        assert container["securityContext"] == {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert {key: probe["httpGet"] for key, probe in container.items() if key.endswith("Probe")} == {
            "startupProbe": {"path": "/v2/health/ready", "port": "http"},
            "readinessProbe": {"path": "/v2/health/ready", "port": "http"},
            "livenessProbe": {"path": "/v2/health/live", "port": "http"},
        }
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= deploy.MEASURED_START_S * deploy.START_MARGIN
        env = {item["name"]: item for item in container["env"]}
        assert env["HPS_ADMIN_KEY"] == {
            "name": "HPS_ADMIN_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": f"hps-{name.lower().replace('_', '-')}-admin-key", "key": "admin-key"}
            },
        }
        assert env["HPS_CPU_THREADS"]["value"] == str(params.cpu_threads)
        assert env["HPS_INSTANCES"]["value"] == str(params.instances)
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert container["resources"]["limits"]["cpu"] == str(params.instances * params.cpu_threads)
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts["/tmp"] == "tmp" and mounts["/dev/shm"] == "dshm"
        assert ("HPS_STATE_DIR" in env) == (name in STATEFUL) == (deploy.STATE_DIR in mounts)
        if name in STATEFUL:
            assert env["HPS_STATE_DIR"]["value"] == deploy.STATE_DIR
    pod = documents["kubernetes/deployment.yaml"]["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    shm = volumes["dshm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    memory = int(
        _container(documents["kubernetes/deployment.yaml"])["resources"]["limits"]["memory"].removesuffix("Mi")
    )
    assert memory == params.instances * params.memory_mib + int(shm["sizeLimit"].removesuffix("Mi"))
    service = documents["kubernetes/service.yaml"]["spec"]["ports"]
    assert {port["name"]: port["port"] for port in service} == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_a_stateful_pipeline_gets_its_claim_and_one_pod():
    documents = _documents("face_recognition")
    deployment = documents["kubernetes/deployment.yaml"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    claims = {volume["name"]: volume for volume in deployment["template"]["spec"]["volumes"]}
    assert claims["state"] == {"name": "state", "persistentVolumeClaim": {"claimName": "hps-face-recognition-state"}}
    assert documents["kubernetes/persistentvolumeclaim.yaml"] == documents["kserve/persistentvolumeclaim.yaml"]
    assert documents["kubernetes/persistentvolumeclaim.yaml"]["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    isvc = documents["kserve/inferenceservice.yaml"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"


def test_a_scaling_pipeline_leaves_the_count_to_its_autoscaler():
    documents = _documents("OCR")
    assert "replicas" not in documents["kubernetes/deployment.yaml"]["spec"]
    hpa = documents["kubernetes/horizontalpodautoscaler.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    predictor = documents["kserve/inferenceservice.yaml"]["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleMetric"]) == (2, 4, "cpu")
    assert documents["kserve/servingruntime.yaml"]["spec"]["containers"][0]["name"] == "kserve-container"


def test_sizes_follow_the_deploy_table():
    pipeline = PIPELINES["OCR"].model_copy(
        update={
            "deploy": DeployParameters(
                instances=2, cpu_threads=3, memory_mib=512, shm_mib=128, start_seconds=100, max_replicas=6
            )
        }
    )
    container = _container(_documents("OCR", pipeline=pipeline)["kubernetes/deployment.yaml"])
    assert container["resources"]["limits"] == {"cpu": "6", "memory": f"{2 * 512 + 128}Mi"}
    assert {item["name"]: item.get("value") for item in container["env"]}["HPS_CPU_THREADS"] == "3"
    assert container["startupProbe"]["failureThreshold"] * deploy.PROBE_PERIOD_S >= 100 * deploy.START_MARGIN


@pytest.mark.parametrize("target", ["gpu-cu118", "gpu-cu12"])
def test_a_gpu_target_asks_for_a_gpu(target):
    files = deploy.render("OCR", PIPELINES["OCR"], target, IMAGE, BOTH, "x")
    for path in ("kubernetes/deployment.yaml", "kserve/servingruntime.yaml"):
        manifests.validate_text(files[path])
        container = _container(yaml.safe_load(files[path]))
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {item["name"]: item.get("value") for item in container["env"]}["HPS_DEVICE"] == "gpu"


def test_shared_memory_is_sized_from_the_python_models(monkeypatch):
    monkeypatch.setattr(deploy, "SHM_ROUND_MIB", 1)
    batch = deploy.MAX_REQUEST_MIB * 8  # every shipped model batches up to 8 requests
    assert deploy.shm_mib("OCR", 1) == 1 * deploy.SHM_REGION_MIB + batch
    assert deploy.shm_mib("face_recognition", 1) == 4 * deploy.SHM_REGION_MIB + batch
    # One python model for the whole request: one region per instance.
    assert deploy.shm_mib("lexical_analysis", 1) == 1 * deploy.SHM_REGION_MIB + batch
    assert deploy.shm_mib("lexical_analysis", 2) == 2 * deploy.SHM_REGION_MIB + 2 * batch


def test_shared_memory_follows_max_batch_size_and_skips_ensembles(tmp_path, monkeypatch):
    repo = tmp_path / "pipelines" / "Sample" / "server" / "model_repo"
    for model, config in {
        "a": 'backend: "python"\nmax_batch_size: 4\n',
        "b": 'backend: "python"\n',
        "c": 'platform: "ensemble"\nmax_batch_size: 64\n',
    }.items():
        (repo / model).mkdir(parents=True)
        (repo / model / "config.pbtxt").write_text(config, encoding="utf-8")
    monkeypatch.setenv("HPSFORGE_PROJECT", str(tmp_path))
    monkeypatch.setattr(deploy, "SHM_ROUND_MIB", 1)
    assert deploy.shm_mib("Sample", 2) == 2 * 2 * deploy.SHM_REGION_MIB + 2 * 4 * deploy.MAX_REQUEST_MIB
    (repo / "b" / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 4x\n', encoding="utf-8")
    with pytest.raises(
        UsageError,
        match=re.escape(f"{repo / 'b' / 'config.pbtxt'}:2:17: not a Triton model config (field max_batch_size)"),
    ):
        deploy.shm_mib("Sample", 1)


def _pipeline_folder(tmp_path: Path, deploy_table: str) -> Path:
    folder = tmp_path / "Sample"
    folder.mkdir()
    (folder / "pipeline.toml").write_text(f'description = "a sample"\n\n[deploy]\n{deploy_table}\n', encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "table, field",
    [
        ("replica = 3", "deploy.replica: unknown field"),
        ("cpu_threads = 0", "deploy.cpu_threads"),
        ('state = { size = "1GB" }', "deploy.state.size"),
        ("min_replicas = 5", "min_replicas (5) is above max_replicas (4)"),
        ('state = { size = "1Gi" }', "state volume serves one pod: set max_replicas = 1"),
    ],
)
def test_a_bad_deploy_table_names_the_file_and_the_field(tmp_path, table, field):
    folder = _pipeline_folder(tmp_path, table)
    with pytest.raises(UsageError) as caught:
        load_pipeline(folder)
    assert str(folder / "pipeline.toml") in str(caught.value) and field in str(caught.value)


def test_a_shared_volume_may_scale(tmp_path):
    _, pipeline = load_pipeline(_pipeline_folder(tmp_path, 'state = { access_mode = "ReadWriteMany" }'))
    assert pipeline.deploy.max_replicas == 4 and pipeline.deploy.state.size == "1Gi"


@pytest.fixture
def deploy_dir(tmp_path):
    return tmp_path / "deploy"


def test_the_session_writes_the_recorded_digest(deploy_dir, capsys):
    record = images_lock.ImagesLock.read().images["pipeline-ocr-cpu"]
    cli.run_deploy(["OCR", "--kubernetes", "--output", str(deploy_dir)])
    container = _container(yaml.safe_load((deploy_dir / "OCR" / "kubernetes" / "deployment.yaml").read_text()))
    assert container["image"] == f"hpsforge/ocr-cpu@{record.digest}"
    assert not (deploy_dir / "OCR" / "kserve").exists()
    printed = capsys.readouterr().out
    assert "kubernetes/deployment.yaml" in printed and "names no registry" in printed


def test_two_runs_are_byte_identical(deploy_dir, tmp_path):
    arguments = ["--all", "--kubernetes", "--kserve"]
    cli.run_deploy([*arguments, "--output", str(deploy_dir)])
    first = _tree(deploy_dir)
    # The second run is another process with another hash seed, writing elsewhere.
    second_dir = tmp_path / "again"
    script = "import sys; from hpsforge import cli; cli.run_deploy(sys.argv[1:])"
    subprocess.run(
        [sys.executable, "-c", script, *arguments, "--output", str(second_dir)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert first == _tree(second_dir)
    assert {path.split("/")[0] for path in first} == set(PIPELINES)
    cli.run_deploy([*arguments, "--output", str(deploy_dir)])  # over the previous output: unchanged
    assert _tree(deploy_dir) == first


def test_the_recorded_reference_may_already_be_a_pushed_digest():
    digest = "sha256:" + "cd" * 32
    images = images_lock.ImagesLock(
        images={
            "pipeline-ocr-cpu": images_lock.ImageRecord(
                reference=f"registry.example:5000/hps/ocr-cpu@{digest}", digest=digest, input_sha256="0" * 64
            )
        }
    )
    assert deploy.recorded_image("OCR", "cpu", images) == f"registry.example:5000/hps/ocr-cpu@{digest}"
    with pytest.raises(HpsforgeError, match="no pipeline-lexical-analysis-cpu image is recorded") as caught:
        deploy.recorded_image("lexical_analysis", "cpu", images)
    assert "nox -s images -- cpu" in str(caught.value)
    broken = images_lock.ImagesLock(
        images={
            "pipeline-ocr-cpu": images_lock.ImageRecord(
                reference="hpsforge/ocr-cpu:1", digest="sha256:short", input_sha256="0" * 64
            )
        }
    )
    with pytest.raises(HpsforgeError, match="not a digest reference"):
        deploy.recorded_image("OCR", "cpu", broken)


def test_an_unknown_pipeline_lists_the_known_ones(deploy_dir):
    with pytest.raises(UsageError) as caught:
        cli.run_deploy([*["OCRR", "--kubernetes"], "--output", str(deploy_dir)])
    assert f"unknown pipeline(s) OCRR; known: {', '.join(PIPELINES)}" in str(caught.value)
    assert not deploy_dir.exists()


@pytest.mark.parametrize(
    "reference",
    [
        "hpsforge/ocr-cpu:36e33bf2afd4",
        "hpsforge/ocr-cpu",
        "registry.example:5000/hps/ocr-cpu@sha256:" + "ab" * 31,
        "registry.example:5000/hps/ocr-cpu@sha512:" + "ab" * 64,
        "registry.example/Hps/ocr-cpu@sha256:" + "ab" * 32,
        "registry.example/hps/ocr-cpu@sha256:" + "AB" * 32,
        "registry.example/hps/ocr-cpu@sha256:" + "ab" * 32 + " --privileged",
    ],
)
def test_a_non_digest_image_is_refused(deploy_dir, reference):
    with pytest.raises(UsageError, match="not a digest reference") as caught:
        cli.run_deploy([*["OCR", "--kubernetes", "--image", reference], "--output", str(deploy_dir)])
    assert caught.value.exit_code == 2 and "REPOSITORY@sha256:" in str(caught.value)
    assert not deploy_dir.exists()


@pytest.mark.parametrize(
    "reference",
    [
        "registry.example:5000/hps/ocr-cpu@sha256:" + "ab" * 32,
        "localhost/ocr@sha256:" + "ab" * 32,
        "hps/ocr-cpu:v1@sha256:" + "ab" * 32,
        "ocr__cpu@sha256:" + "ab" * 32,
    ],
)
def test_a_digest_image_is_written_as_given(deploy_dir, reference):
    cli.run_deploy([*["OCR", "--kserve", "--image", reference], "--output", str(deploy_dir)])
    runtime = yaml.safe_load((deploy_dir / "OCR" / "kserve" / "servingruntime.yaml").read_text())
    assert _container(runtime)["image"] == reference


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["OCR"], "--kubernetes, --kserve or both"),
        (["--kubernetes"], "name the pipelines to deploy, or give --all"),
        (["OCR", "lexical_analysis", "--kubernetes", "--image", IMAGE], "--image names one pipeline's image"),
        (["OCR", "--kubernetes", "--target", "tpu"], "unknown target 'tpu'"),
    ],
)
def test_bad_arguments(deploy_dir, arguments, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        cli.run_deploy([*arguments, "--output", str(deploy_dir)])
    assert not deploy_dir.exists()


def test_the_previous_output_stays_until_the_new_one_is_complete(deploy_dir, monkeypatch):
    cli.run_deploy([*["OCR", "--kubernetes"], "--output", str(deploy_dir)])
    before = _tree(deploy_dir)
    written = []
    original = Path.write_text

    def fail_on_the_third(self, *args, **kwargs):
        written.append(self)
        if len(written) == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fail_on_the_third)
    with pytest.raises(OSError, match="disk full"):
        cli.run_deploy([*["OCR", "--kubernetes", "--kserve"], "--output", str(deploy_dir)])
    monkeypatch.undo()
    assert _tree(deploy_dir) == before
    assert [path.name for path in deploy_dir.iterdir()] == ["OCR"]  # no staging folder left
