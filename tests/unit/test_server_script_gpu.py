"""sdk/server/server.sh on gpu runtimes: gpu configs only when hps-gpu-check counts a usable GPU,
a logged CPU fallback without one, and HPS_DEVICE=gpu without one a clear exit (a stand-in
`tritonserver` prints its arguments; a stand-in `hps-gpu-check --count` prints a GPU count)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SDK_SERVER = Path(__file__).resolve().parents[2] / "sdk" / "server"


def _bundle(tmp_path: Path, gpu_count: str | None) -> Path:
    shutil.copy(SDK_SERVER / "server.sh", tmp_path / "server.sh")
    shutil.copytree(SDK_SERVER / "hps_server", tmp_path / "lib" / "hps_server")
    (tmp_path / "model_repo" / "ocr" / "1").mkdir(parents=True)
    (tmp_path / "model_repo" / "ocr" / "configs").mkdir()
    for device in ("cpu", "gpu"):
        if device == "cpu":
            (tmp_path / "model_repo" / "ocr" / "config.pbtxt").write_text(
                'name: "ocr"\nbackend: "python"\ninstance_group [{ count: 1, kind: KIND_CPU }]\n'
            )
        (tmp_path / "model_repo" / "ocr" / "configs" / f"{device}.pbtxt").write_text(
            f'name: "ocr"\nbackend: "python"\ninstance_group [{{ count: 1, kind: KIND_{device.upper()} }}]\n'
        )
    (tmp_path / "MODELS").write_text("ocr\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    if gpu_count is not None:
        (bin_dir / "hps-gpu-check").write_text(f'#!/bin/sh\n[ "$1" = --count ] || exit 9\necho "{gpu_count}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return tmp_path


def _run(bundle: Path, **env):
    environment = {
        "PATH": f"{bundle / 'bin'}:{os.environ['PATH']}",
        "HOME": str(bundle),
        "HPS_ADMIN_KEY": "k" * 20,
        "HPS_RUNTIME_DIR": str(bundle / "run"),
        **env,
    }
    return subprocess.run(
        ["sh", str(bundle / "server.sh")], capture_output=True, text=True, env=environment, timeout=30
    )


def _config_name(result) -> str:
    """Which device's configs the served repository holds (what server.sh chose)."""
    assert result.returncode == 0, result.stderr
    served = next(arg for arg in result.stdout.splitlines() if arg.startswith("--model-repository="))
    config = (Path(served.partition("=")[2]) / "ocr" / "config.pbtxt").read_text()
    return "--model-config-name=gpu" if "kind: KIND_GPU" in config else "--model-config-name=cpu"


@pytest.mark.parametrize("device", ["auto", "gpu"])
def test_a_usable_gpu_selects_the_gpu_configs(tmp_path, device):
    result = _run(_bundle(tmp_path, "2"), HPS_DEVICE=device)
    assert result.returncode == 0, result.stderr
    assert _config_name(result) == "--model-config-name=gpu"
    assert "falling back" not in result.stderr


@pytest.mark.parametrize("count", ["0", "", "garbage"])
def test_auto_without_a_gpu_falls_back_to_the_cpu_configs_and_says_why(tmp_path, count):
    result = _run(_bundle(tmp_path, count))
    assert result.returncode == 0, result.stderr
    assert _config_name(result) == "--model-config-name=cpu"
    assert "no usable NVIDIA GPU is visible" in result.stderr and "falling back to the CPU" in result.stderr


def test_gpu_without_a_gpu_is_a_clear_error_not_a_server_start(tmp_path):
    result = _run(_bundle(tmp_path, "0"), HPS_DEVICE="gpu")
    assert result.returncode == 2 and result.stdout == ""  # tritonserver never started
    assert "HPS_DEVICE=gpu, but no usable NVIDIA GPU is visible" in result.stderr
    assert "--gpus" in result.stderr and "HPS_DEVICE=auto" in result.stderr


def test_a_cpu_runtime_serves_cpu_quietly_and_refuses_gpu(tmp_path):
    bundle = _bundle(tmp_path, None)  # no hps-gpu-check: a cpu runtime
    quiet = _run(bundle)
    assert quiet.returncode == 0 and _config_name(quiet) == "--model-config-name=cpu"
    assert "falling back" not in quiet.stderr
    refused = _run(bundle, HPS_DEVICE="gpu")
    assert refused.returncode == 2 and "this runtime has no GPU support" in refused.stderr


def test_cpu_never_asks_for_a_gpu(tmp_path):
    bundle = _bundle(tmp_path, "1")
    (bundle / "bin" / "hps-gpu-check").write_text("#!/bin/sh\nexit 99\n")  # would fail if asked
    result = _run(bundle, HPS_DEVICE="cpu")
    assert result.returncode == 0 and _config_name(result) == "--model-config-name=cpu"
