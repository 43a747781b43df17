import subprocess
from pathlib import Path

import pytest

from hpsforge import debian, rc

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.engine

LOCKS = (debian.ENGINE_LOCK, debian.BASE_LOCK, rc.RC_LOCK)


def _freeze() -> None:
    subprocess.run([str(PROJECT_ROOT / "noxw"), "-s", "freeze"], check=True, cwd=PROJECT_ROOT)


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
