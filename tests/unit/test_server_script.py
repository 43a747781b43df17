"""sdk/server/server.sh: the options it gives tritonserver and the model repository it serves
(the real server runs it in the engine tests; here a stand-in `tritonserver` on PATH prints the
arguments it was given), and hps_server.launch, which chooses instances and threads from the CPUs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SDK_SERVER = Path(__file__).resolve().parents[2] / "sdk" / "server"
SCRIPT = SDK_SERVER / "server.sh"
sys.path.insert(0, str(SDK_SERVER))

from hps_server import launch  # noqa: E402

CPU_CONFIG = (
    'name: "{name}"\nbackend: "python"\n{extra}\n# Written by hpsforge for the {device} device.\n'
    "instance_group [{{ count: 1, kind: KIND_{kind} }}]\n"
)


def _model(repo: Path, name: str, extra: str = "") -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text("# a model\n")
    (repo / name / "configs").mkdir()
    for device, kind in (("cpu", "CPU"), ("gpu", "GPU")):
        (repo / name / "configs" / f"{device}.pbtxt").write_text(
            CPU_CONFIG.format(name=name, extra=extra, device=device, kind=kind)
        )
    (repo / name / "config.pbtxt").write_text(CPU_CONFIG.format(name=name, extra=extra, device="cpu", kind="CPU"))


@pytest.fixture
def bundle(tmp_path):
    shutil.copy(SCRIPT, tmp_path / "server.sh")
    shutil.copytree(SDK_SERVER / "hps_server", tmp_path / "lib" / "hps_server")
    _model(tmp_path / "model_repo", "ocr")
    _model(tmp_path / "model_repo", "ocr-extra", 'parameters { key: "hps_instances" value: { string_value: "1" } }')
    (tmp_path / "MODELS").write_text("ocr\nocr-extra\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "tritonserver").chmod(0o755)
    return tmp_path


def _run(bundle, *args, **env):
    environment = {
        "PATH": f"{bundle / 'bin'}:{os.environ['PATH']}",
        "HOME": str(bundle),
        "HPS_RUNTIME_DIR": str(bundle / "run"),
        **env,
    }
    return subprocess.run(
        ["sh", str(bundle / "server.sh"), *args], capture_output=True, text=True, env=environment, timeout=30
    )


def test_every_declared_model_is_loaded_by_name_and_caller_arguments_come_last(bundle):
    result = _run(bundle, "--log-verbose=1", HPS_ADMIN_KEY="k" * 20)
    arguments = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert "--load-model=ocr" in arguments and "--load-model=ocr-extra" in arguments
    assert "--model-control-mode=explicit" in arguments
    assert f"--model-repository={bundle / 'run' / 'model_repo'}" in arguments
    assert arguments[-1] == "--log-verbose=1"
    restricted = "model-repository,shared-memory,logging,trace:hps-admin-key=" + "k" * 20
    assert f"--http-restricted-api={restricted}" in arguments
    assert f"--grpc-restricted-protocol={restricted}" in arguments


def test_without_a_key_the_restricted_apis_get_a_random_one(bundle):
    first = [a for a in _run(bundle).stdout.splitlines() if a.startswith("--http-restricted-api=")]
    second = [a for a in _run(bundle).stdout.splitlines() if a.startswith("--http-restricted-api=")]
    assert first and second and first != second and len(first[0].rsplit("=", 1)[1]) == 32


@pytest.mark.parametrize("key", ["a b c d e f g h i j", "short", "semi;colon-0123456789"])
def test_bad_keys_are_refused_with_the_rule(bundle, key):
    result = _run(bundle, HPS_ADMIN_KEY=key)
    assert result.returncode == 2 and "HPS_ADMIN_KEY must be 16 or more characters" in result.stderr


def _served(bundle, model: str) -> str:
    return (bundle / "run" / "model_repo" / model / "config.pbtxt").read_text()


def test_device_choice(bundle):
    (bundle / "bin" / "hps-gpu-check").write_text("#!/bin/sh\necho 1\n")  # a gpu runtime with one GPU
    (bundle / "bin" / "hps-gpu-check").chmod(0o755)
    assert _run(bundle, HPS_DEVICE="gpu").returncode == 0
    assert "kind: KIND_GPU" in _served(bundle, "ocr") and "hps_cpu_threads" not in _served(bundle, "ocr")
    result = _run(bundle, HPS_DEVICE="tpu")
    assert result.returncode == 2 and "HPS_DEVICE must be auto, cpu or gpu" in result.stderr


def test_the_served_repository_links_to_the_bundle_with_counts_from_the_cpus(bundle):
    result = _run(bundle, HPS_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    cpus = launch.usable_cpus().usable
    assert f"instance_group [{{ count: {cpus}, kind: KIND_CPU }}]" in _served(bundle, "ocr")
    assert 'key: "hps_cpu_threads" value: { string_value: "1" }' in _served(bundle, "ocr")
    # The pinned model keeps its one instance, with the CPUs as its threads.
    assert "instance_group [{ count: 1, kind: KIND_CPU }]" in _served(bundle, "ocr-extra")
    assert f'string_value: "{cpus}" }}' in _served(bundle, "ocr-extra")
    busy = bundle / "run" / "busy" / "ocr"
    if cpus > 1:  # a request alone may use every CPU: the instances say in this file when they are busy
        assert f'key: "hps_burst_threads" value: {{ string_value: "{cpus}" }}' in _served(bundle, "ocr")
        assert f'key: "hps_busy_file" value: {{ string_value: "{busy}" }}' in _served(bundle, "ocr")
        assert busy.read_bytes() == bytes(cpus)
    assert "hps_burst_threads" not in _served(bundle, "ocr-extra")  # one instance with every CPU already
    version = bundle / "run" / "model_repo" / "ocr" / "1"
    assert version.is_symlink() and version.resolve() == (bundle / "model_repo" / "ocr" / "1").resolve()
    assert f"{cpus} CPU(s)" in result.stderr and "ocr: " in result.stderr


def test_a_model_can_refuse_the_burst(bundle):
    """A model of a millisecond's work (lexical analysis) keeps its instance's threads: a second
    thread costs it more CPU than it saves."""
    cpus = 4  # as on a machine where the other models would burst
    plan = launch.plan_model("lac", CPU_CONFIG.format(name="lac", extra="", device="cpu", kind="CPU"), cpus, None, None)
    assert plan.burst == cpus
    refusing = CPU_CONFIG.format(
        name="lac", extra='parameters { key: "hps_burst" value: { string_value: "0" } }', device="cpu", kind="CPU"
    )
    plan = launch.plan_model("lac", refusing, cpus, None, None)
    assert plan.burst is None and plan.instances == cpus and plan.threads == 1
    assert "hps_burst_threads" not in launch.device_text(refusing, plan, Path("/run/busy/lac"))


def test_instances_and_threads_can_be_given(bundle):
    assert _run(bundle, HPS_INSTANCES="3", HPS_CPU_THREADS="2").returncode == 0
    assert "count: 3, kind: KIND_CPU" in _served(bundle, "ocr")
    assert 'string_value: "2" }' in _served(bundle, "ocr") and "hps_burst_threads" not in _served(bundle, "ocr")


@pytest.mark.parametrize("variable", ["HPS_INSTANCES", "HPS_CPU_THREADS"])
def test_bad_counts_are_refused_with_the_rule(bundle, variable):
    result = _run(bundle, **{variable: "many"})
    assert result.returncode == 2 and f"{variable} must be a positive integer, not 'many'" in result.stderr


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    return tmp_path


@pytest.mark.parametrize(
    "v2, v1, quota",
    [
        ("max 100000\n", None, None),  # no limit
        ("150000 100000\n", None, 1.5),  # docker run --cpus 1.5
        ("50000 100000\n", None, 0.5),  # half a CPU still gets one instance
        (None, ("-1", "100000"), None),  # cgroup v1 without a quota
        (None, ("300000", "100000"), 3.0),  # cgroup v1 with one
        (None, None, None),  # no cgroup files at all
    ],
)
def test_the_cgroup_quota_limits_the_cpus(tmp_path, monkeypatch, v2, v1, quota):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    cpus = launch.usable_cpus(_cgroup(tmp_path, v2, v1))
    assert cpus.affinity == 4 and cpus.quota == quota
    expected = 4 if quota is None else max(1, min(4, -(-quota // 1)))
    assert cpus.usable == expected


def test_affinity_limits_the_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2}, raising=False)
    assert launch.usable_cpus(_cgroup(tmp_path, "400000 100000")).usable == 1


def test_plans_per_model():
    config = 'name: "m"\ninstance_group [{ count: 1, kind: KIND_CPU }]\n'
    assert launch.plan_model("m", config, 4, None, None) == launch.ModelPlan("m", "KIND_CPU", 4, 1, burst=4)
    assert launch.plan_model("m", config, 4, 2, None) == launch.ModelPlan("m", "KIND_CPU", 2, 2, burst=4)
    assert launch.plan_model("m", config, 4, 3, None).threads == 1
    assert launch.plan_model("m", config, 4, None, 1).burst is None  # threads given: no burst
    assert launch.plan_model("m", config, 4, None, None, burst=False).burst is None  # HPS_BURST=0
    assert launch.plan_model("m", config, 1, None, None).burst is None  # one CPU: nothing to gain
    assert launch.plan_model("m", config.replace("KIND_CPU", "KIND_GPU"), 4, None, None).instances == 1
    assert launch.plan_model("e", 'platform: "ensemble"\n', 4, None, None).kind is None


def test_the_count_hpsforge_writes_is_the_one_server_sh_rewrites(tmp_path):
    """The contract between build/model_repo.py (per-device configs) and hps_server.launch."""
    from hpsforge.bundle import model_repo

    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text("")
    (model / "config.pbtxt").write_text('name: "m"\nbackend: "python"\nmax_batch_size: 8\n')
    for device, kind in (("cpu", "KIND_CPU"), ("gpu", "KIND_GPU")):
        text = model_repo.device_config(model / "config.pbtxt", device)
        plan = launch.plan_model("m", text, 4, None, None)
        assert plan.kind == kind
        served = launch.device_text(text, plan)
        if device == "cpu":
            assert "instance_group [{ count: 4, kind: KIND_CPU }]" in served and "count: 1" not in served
        else:
            assert served == text


def test_an_unwritable_runtime_dir_is_named_with_the_way_out(bundle):
    blocker = bundle / "not-a-folder"
    blocker.write_text("")
    result = _run(bundle, HPS_RUNTIME_DIR=str(blocker / "run"))
    assert result.returncode == 2 and result.stdout == ""  # tritonserver never started
    assert f"cannot write the served model repository in {blocker / 'run'} (HPS_RUNTIME_DIR)" in result.stderr
    assert "writable volume" in result.stderr
