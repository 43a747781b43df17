"""sdk/server/server.sh: the options it gives tritonserver (the real server runs it in the engine
tests; here a stand-in `tritonserver` on PATH prints the arguments it was given)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "sdk" / "server" / "server.sh"


@pytest.fixture
def bundle(tmp_path):
    shutil.copy(SCRIPT, tmp_path / "server.sh")
    (tmp_path / "MODELS").write_text("ocr\nocr-extra\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "tritonserver").chmod(0o755)
    return tmp_path


def _run(bundle, *args, **env):
    environment = {"PATH": f"{bundle / 'bin'}:{os.environ['PATH']}", "HOME": str(bundle), **env}
    return subprocess.run(["sh", str(bundle / "server.sh"), *args], capture_output=True, text=True,
                          env=environment, timeout=30)


def test_every_declared_model_is_loaded_by_name_and_caller_arguments_come_last(bundle):
    result = _run(bundle, "--log-verbose=1", HPS_ADMIN_KEY="k" * 20)
    arguments = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert "--load-model=ocr" in arguments and "--load-model=ocr-extra" in arguments
    assert "--model-control-mode=explicit" in arguments and "--model-config-name=cpu" in arguments
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


def test_device_choice(bundle):
    (bundle / "bin" / "hps-gpu-check").write_text("#!/bin/sh\necho 1\n")  # a gpu runtime with one GPU
    (bundle / "bin" / "hps-gpu-check").chmod(0o755)
    assert "--model-config-name=gpu" in _run(bundle, HPS_DEVICE="gpu").stdout.splitlines()
    result = _run(bundle, HPS_DEVICE="tpu")
    assert result.returncode == 2 and "HPS_DEVICE must be auto, cpu or gpu" in result.stderr
