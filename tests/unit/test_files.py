"""hpsforge.files: streaming hashes and all-or-nothing writes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from hpsforge.core import files
from hpsforge.core.files import (
    atomic_output,
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)


def test_sha256_file_multi_chunk(tmp_path):
    data = os.urandom(2 * files.CHUNK + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_file_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 7)  # many reads, a partial last one
    data = bytes(range(256)) * 3 + b"tail"
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_file_empty(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()


def test_sha256_bytes():
    assert sha256_bytes(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_atomic_write_text_creates_parents_and_file(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    assert atomic_write_text(path, "hello\n") is True
    assert path.read_text(encoding="utf-8") == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_atomic_write_text_unchanged_keeps_mtime(tmp_path):
    path = tmp_path / "out.txt"
    assert atomic_write_text(path, "same\n") is True
    old = 1_000_000_000_000_000_000  # a fixed past mtime, in ns
    os.utime(path, ns=(old, old))
    inode = path.stat().st_ino
    assert atomic_write_text(path, "same\n") is False
    assert path.stat().st_mtime_ns == old
    assert path.stat().st_ino == inode


def test_atomic_write_text_changed_rewrites(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "one\n")
    old = 1_000_000_000_000_000_000
    os.utime(path, ns=(old, old))
    assert atomic_write_text(path, "two\n") is True
    assert path.read_text(encoding="utf-8") == "two\n"
    assert path.stat().st_mtime_ns != old


def test_atomic_output_failure_keeps_original(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(b"original")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(path) as stream:
        stream.write(b"half-written")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.bin"]
    assert not list(tmp_path.glob("*.partial"))


def test_atomic_output_failure_on_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt), atomic_output(path) as stream:
        stream.write(b"x")
        raise KeyboardInterrupt  # BaseException too must not leave a partial file
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_success_replaces(tmp_path):
    path = tmp_path / "target.bin"
    path.write_bytes(b"original")
    with atomic_output(path) as stream:
        stream.write(b"new")
        # Until the block completes, the original is what readers see.
        assert path.read_bytes() == b"original"
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.bin"]


def test_canonical_json_is_one_spelling():
    a = canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}})
    b = canonical_json({"a": {"c": "é", "d": [1, 2]}, "b": 1})
    assert a == b
    assert a.endswith("}\n")
    assert "é" in a  # not \u00e9
    assert json.loads(a) == {"a": {"c": "é", "d": [1, 2]}, "b": 1}
    assert a.splitlines()[1] == '  "a": {'


def test_atomic_write_text_is_utf8_whatever_the_locale(tmp_path):
    path = tmp_path / "lock.json"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from hpsforge.core.files import atomic_write_text
        atomic_write_text(Path({str(path)!r}), "caf\\u00e9\\n")
        """
    )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env.pop("PYTHONIOENCODING", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == "café\n".encode()
