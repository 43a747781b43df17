"""images/rc.py: the rc lock must exist, match its declaration and hash every requirement."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpsforge.core.config import RcConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.images import rc
from hpsforge.locks import requirements_lock

CONFIG = RcConfig(image="hpsforge/rc", requirements=["pip==25.3", "wheel==0.48.0"])
HASH = "--hash=sha256:" + "f" * 64


def _lock_text(digest: str, body: str = f"pip==25.3 \\\n    {HASH}\n") -> str:
    return requirements_lock.header("The rc tools.", digest) + body


@pytest.fixture
def rc_lock(tmp_path, monkeypatch) -> Path:
    """Point rc at a temporary lock folder (HPSFORGE_LOCK_DIR); its rc lock file."""
    monkeypatch.setenv("HPSFORGE_LOCK_DIR", str(tmp_path))
    return tmp_path / "rc-requirements.txt"


def test_require_fresh_passes(rc_lock):
    rc_lock.write_text(_lock_text(CONFIG.declaration_sha256()))
    rc.require_fresh(CONFIG)


def test_require_fresh_accepts_text_in_memory(rc_lock):
    rc.require_fresh(CONFIG, _lock_text(CONFIG.declaration_sha256()))
    assert not rc_lock.exists()


def test_require_fresh_missing(rc_lock):
    with pytest.raises(HpsforgeError) as caught:
        rc.require_fresh(CONFIG)
    assert str(rc_lock) in str(caught.value)
    assert "nox -s freeze" in str(caught.value)


def test_require_fresh_without_header(rc_lock):
    rc_lock.write_text(f"pip==25.3 {HASH}\n")
    with pytest.raises(HpsforgeError, match="no input-sha256 header"):
        rc.require_fresh(CONFIG)


def test_require_fresh_stale(rc_lock):
    rc_lock.write_text(_lock_text(CONFIG.declaration_sha256()))
    edited = CONFIG.model_copy(update={"requirements": ["pip==25.3", "wheel==0.49.0"]})
    with pytest.raises(HpsforgeError) as caught:
        rc.require_fresh(edited)
    assert "stale" in str(caught.value)
    assert str(rc_lock) in str(caught.value)


def test_require_fresh_unhashed_requirement(rc_lock):
    rc_lock.write_text(_lock_text(CONFIG.declaration_sha256(), f"pip==25.3 {HASH}\nwheel==0.48.0\n"))
    with pytest.raises(HpsforgeError, match=r"wheel==0.48.0 has no --hash"):
        rc.require_fresh(CONFIG)
