"""The user's entry point: ./noxw lists the sessions and turns bad input into one clear message."""

import os
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SESSIONS = (
    "engine",
    "freeze",
    "lock-check",
    "verify",
    "fetch",
    "sbom",
    "images",
    "assemble",
    "serve",
    "conformance",
    "repro",
    "bench",
    "archive",
    "deploy",
    "host-lock",
    "lint",
    "unit",
    "tests",
    "docs",
)


def noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_every_session_is_listed_with_a_description():
    listing = noxw("-l")
    assert listing.returncode == 0, listing.stderr
    for session in SESSIONS:
        line = next(row for row in listing.stdout.splitlines() if row[2:].startswith(f"{session} -> "))
        assert len(line.split(" -> ", 1)[1]) > 20


def test_malformed_config_is_one_clear_message(tmp_path):
    bad = tmp_path / "hpsforge.toml"
    bad.write_text((PROJECT_ROOT / "hpsforge.toml").read_text().replace("[rc]", "[rc]\ncolour = 'blue'"))
    result = noxw("-s", "images", env={"HPSFORGE_CONFIG": str(bad)})
    assert result.returncode == 2  # a usage error: fix the file
    output = result.stdout + result.stderr
    assert f"{bad}: invalid configuration" in output
    assert "rc.colour: unknown field" in output
    assert "Traceback" not in output


def test_unknown_session_argument_is_refused():
    result = noxw("-s", "images", "--", "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized arguments: --frobnicate" in result.stdout + result.stderr


def _config_with(tmp_path, old: str, new: str) -> Path:
    text = (PROJECT_ROOT / "hpsforge.toml").read_text()
    assert old in text
    path = tmp_path / "hpsforge.toml"
    path.write_text(text.replace(old, new))
    return path


def test_unknown_device_is_refused_before_anything_runs():
    result = noxw("-s", "freeze", "--", "tpu")
    assert result.returncode == 2
    assert (
        "unknown lock(s) tpu; freeze knows: engine, base, rc, model-sources, cpu, gpu-cu118, gpu-cu12, client"
        in result.stderr
    )
    result = noxw("-s", "verify", "--", "tpu")
    assert result.returncode == 2
    assert "unknown target 'tpu'" in result.stderr


def test_malformed_requirement_names_the_field(tmp_path):
    bad = _config_with(tmp_path, '"paddlepaddle==3.3.1"', '"paddlepaddle=3.3.1"')
    result = noxw("-s", "lock-check", env={"HPSFORGE_CONFIG": str(bad)})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "targets.cpu.requirements.0: not a valid requirement" in output
    assert "Traceback" not in output


def test_lock_check_names_a_stale_lock_and_its_refresh_command(tmp_path):
    assert noxw("-s", "lock-check").returncode == 0
    edited = _config_with(tmp_path, '"paddlepaddle==3.3.1"', '"paddlepaddle==3.3.0"')
    result = noxw("-s", "lock-check", env={"HPSFORGE_CONFIG": str(edited)})
    output = result.stdout + result.stderr
    assert result.returncode == 3  # a stale lock: re-lock
    assert "lock/requirements/cpu.txt is stale" in output
    assert "nox -s freeze -- cpu" in output


def test_verify_gpu_names_every_missing_blob_and_where_to_put_it(tmp_path):
    result = noxw("-s", "verify", "--", "gpu-cu118", env={"HPSFORGE_BLOBS_DIR": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode == 4  # an input that cannot be had
    for file in (
        "cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz",
        "TensorRT-8.6.1.6.Linux.x86_64-gnu.cuda-11.8.tar.gz",
    ):
        assert f"save it as {tmp_path / file}" in output


def test_verify_cpu_checks_every_model_file():
    result = noxw("-s", "verify", "--", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    from hpsforge.core.pipelines import load_pipelines

    declared = sum(
        len(artifact.files)
        for pipeline in load_pipelines().values()
        for artifact in [*pipeline.models, *pipeline.fixtures]
    )
    assert declared >= 40  # every pipeline's model files and golden fixtures
    assert f"0 vendor blob(s) and {declared} model file(s) verified" in result.stdout


def _noxw_module(host_lock: Path):
    """./noxw imported as a module (it is a script), reading `host_lock` as the host lock."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("noxw_under_test", str(PROJECT_ROOT / "noxw"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    module.HOST_LOCK = host_lock
    return module


def test_noxw_installs_uv_by_the_hashes_of_the_host_lock(tmp_path):
    """The uv pin noxw hands pip is the lock's own block: the version line and every hash line."""
    lock = PROJECT_ROOT / "lock" / "host-requirements.txt"
    pin = _noxw_module(lock).uv_requirement()
    lines = pin.splitlines()
    assert lines[0].startswith("uv==") and lines[0].endswith("\\")
    assert all(line.strip().startswith("--hash=sha256:") for line in lines[1:])
    assert not lines[-1].endswith("\\") and len(lines) >= 2
    # Every one of those lines is in the lock, in one block.
    assert pin in lock.read_text(encoding="utf-8")


def test_noxw_falls_back_to_pip_for_a_lock_without_uv(tmp_path):
    lock = tmp_path / "host-requirements.txt"
    lock.write_text("six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    assert _noxw_module(lock).uv_requirement() is None


def test_gpu_means_the_release_gpu_target():
    result = noxw("-s", "verify", "--", "gpu")  # gpu-cu12 has no vendor blob: its model files only
    assert "hpsforge: gpu is target gpu-cu12 (aliases.gpu in hpsforge.toml)" in result.stdout
    assert "unknown target" not in result.stderr
