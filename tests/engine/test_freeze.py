import os
import subprocess
from pathlib import Path

import pytest

from hpsforge import debian, models, pip_locks, rc

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.engine

LOCKS = (debian.ENGINE_LOCK, debian.BASE_LOCK, rc.RC_LOCK, models.MODEL_SOURCES_LOCK,
         pip_locks.lock_path("cpu"), pip_locks.lock_path("gpu"))


def _freeze(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(PROJECT_ROOT / "noxw"), "-s", "freeze", *(["--", *args] if args else [])],
                          check=check, cwd=PROJECT_ROOT, capture_output=not check, text=True,
                          env={**os.environ, **(env or {})})


def test_freeze_twice_leaves_every_lock_byte_identical(engine_status):
    _freeze()
    first = {path: path.read_bytes() for path in LOCKS}
    _freeze()
    for path in LOCKS:
        assert path.read_bytes() == first[path], f"{path.name} changed on a second freeze"


def test_every_locked_deb_is_complete_and_hashed():
    lock = debian.DebianLock.read(debian.BASE_LOCK)
    names = {p.name for p in lock.packages}
    for declared in ("python3", "tini", "ca-certificates", "libgomp1", "libc6", "dpkg"):
        assert declared in names
    assert all(len(p.sha256) == 64 and p.size > 0 for p in lock.packages)


def test_an_unsatisfiable_pin_fails_the_freeze_and_replaces_no_lock(engine_status, tmp_path):
    conflicting = (PROJECT_ROOT / "hpsforge.toml").read_text().replace(
        'requirements = ["paddlepaddle==3.3.1"]', 'requirements = ["paddlepaddle==3.3.1", "numpy>=2"]')
    assert "numpy>=2" in conflicting
    config = tmp_path / "hpsforge.toml"
    config.write_text(conflicting)
    before = {path: path.read_bytes() for path in LOCKS}
    result = _freeze("cpu", env={"HPSFORGE_CONFIG": str(config)}, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "`pip-compile` failed in the rc image" in output and "numpy>=2" in output
    assert "cannot be resolved together" in output
    assert {path: path.read_bytes() for path in LOCKS} == before
