"""hpsforge.rc: the rc lock's input-hash header and the freshness check."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpsforge import rc
from hpsforge.config import RcConfig
from hpsforge.errors import HpsforgeError

CONFIG = RcConfig(image="hpsforge/rc", requirements=["pip==25.3", "wheel==0.48.0"])


def _lock_text(digest: str) -> str:
    return (
        "# The rc image's Python tools, pinned with hashes by hashin.\n"
        f"{rc.INPUT_HEADER}{digest}\n"
        "pip==25.3 \\\n    --hash=sha256:" + "f" * 64 + "\n"
    )


@pytest.fixture
def rc_lock(tmp_path, monkeypatch) -> Path:
    """Point rc at a temporary lock file."""
    path = tmp_path / "rc-requirements.txt"
    monkeypatch.setattr(rc, "RC_LOCK", path)
    return path


def test_locked_input_sha256_missing(tmp_path):
    assert rc.locked_input_sha256(tmp_path / "absent.txt") is None


def test_locked_input_sha256_reads_header(tmp_path):
    path = tmp_path / "rc-requirements.txt"
    digest = "0123456789abcdef" * 4
    path.write_text(_lock_text(digest))
    assert rc.locked_input_sha256(path) == digest


@pytest.mark.parametrize(
    "text",
    [
        "pip==25.3\n",  # no header at all
        _lock_text("abc123"),  # too short
        _lock_text("A" * 64),  # not lower-case hex
        _lock_text("a" * 64 + "0"),  # too long
        _lock_text("a" * 64).replace(rc.INPUT_HEADER, "  " + rc.INPUT_HEADER),  # not at a line start
    ],
)
def test_locked_input_sha256_rejects_malformed_header(tmp_path, text):
    path = tmp_path / "rc-requirements.txt"
    path.write_text(text)
    assert rc.locked_input_sha256(path) is None


def test_require_fresh_passes(rc_lock):
    rc_lock.write_text(_lock_text(CONFIG.declaration_sha256()))
    rc.require_fresh(CONFIG)


def test_require_fresh_missing(rc_lock):
    with pytest.raises(HpsforgeError) as caught:
        rc.require_fresh(CONFIG)
    assert str(rc_lock) in str(caught.value)
    assert "nox -s freeze" in str(caught.value)


def test_require_fresh_without_header(rc_lock):
    rc_lock.write_text("pip==25.3\n")
    with pytest.raises(HpsforgeError, match="without its input hash"):
        rc.require_fresh(CONFIG)


def test_require_fresh_stale(rc_lock):
    rc_lock.write_text(_lock_text(CONFIG.declaration_sha256()))
    edited = CONFIG.model_copy(update={"requirements": ["pip==25.3", "wheel==0.49.0"]})
    with pytest.raises(HpsforgeError) as caught:
        rc.require_fresh(edited)
    assert "stale" in str(caught.value)
    assert str(rc_lock) in str(caught.value)


def test_require_fresh_follows_rc_lock(tmp_path, monkeypatch):
    path = tmp_path / "rc-requirements.txt"
    monkeypatch.setattr(rc, "RC_LOCK", path)  # and nothing else: the lock is absent
    with pytest.raises(HpsforgeError, match="missing"):
        rc.require_fresh(CONFIG)
