"""hpsforge.store: the content-addressed store, with file:// URLs standing in for mirrors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.inputs import store
from hpsforge.inputs.store import ContentStore, cache_root

RELOCK = "nox -s freeze"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("HPSFORGE_CACHE", str(root))
    return root


@pytest.fixture
def content_store(cache) -> ContentStore:
    built = ContentStore()
    assert built.root == cache / "sha256"
    return built


@pytest.fixture
def source(tmp_path) -> tuple[Path, bytes, str]:
    data = b"a .deb, more or less\n" * 1000
    path = tmp_path / "mirror" / "pool" / "thing.deb"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


def _stored_files(content_store: ContentStore) -> list[Path]:
    if not content_store.root.exists():
        return []
    return [p for p in content_store.root.rglob("*") if not p.is_dir()]


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("HPSFORGE_CACHE")
    assert cache_root() == tmp_path / "xdg" / "hpsforge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "hpsforge"


def test_path_layout(content_store):
    digest = "ab" + "0" * 62
    assert content_store.path(digest) == content_store.root / "ab" / digest


def test_verified_accepts_intact_file(content_store):
    data = b"intact"
    digest = hashlib.sha256(data).hexdigest()
    path = content_store.path(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert content_store.verified(digest, "intact.deb") == path


def test_verified_refuses_tampered_file(content_store):
    digest = hashlib.sha256(b"original").hexdigest()
    path = content_store.path(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered")
    with pytest.raises(HpsforgeError) as caught:
        content_store.verified(digest, "thing.deb")
    message = str(caught.value)
    assert "thing.deb" in message
    assert digest in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert str(path) in message


def test_fetch_file_url_stores_it(content_store, source):
    path, data, digest = source
    stored = content_store.fetch(path.as_uri(), digest, len(data), "thing.deb", RELOCK)
    assert stored == content_store.path(digest)
    assert stored.read_bytes() == data
    assert _stored_files(content_store) == [stored]  # no .download.* left over


def test_fetch_without_size(content_store, source):
    path, data, digest = source
    stored = content_store.fetch(path.as_uri(), digest, None, "thing.deb", RELOCK)
    assert stored.read_bytes() == data


def test_fetch_present_file_is_not_downloaded_again(content_store, source, tmp_path):
    path, data, digest = source
    content_store.fetch(path.as_uri(), digest, len(data), "thing.deb", RELOCK)
    gone = (tmp_path / "nowhere.deb").as_uri()
    assert content_store.fetch(gone, digest, len(data), "thing.deb", RELOCK) == content_store.path(digest)


def test_fetch_refuses_tampered_stored_file(content_store, source):
    path, data, digest = source
    stored = content_store.fetch(path.as_uri(), digest, len(data), "thing.deb", RELOCK)
    stored.write_bytes(b"changed on disk")
    with pytest.raises(HpsforgeError, match="does not match its lock"):
        content_store.fetch(path.as_uri(), digest, len(data), "thing.deb", RELOCK)


def test_fetch_wrong_hash(content_store, source):
    path, data, actual = source
    expected = hashlib.sha256(b"what the lock says").hexdigest()
    with pytest.raises(HpsforgeError) as caught:
        content_store.fetch(path.as_uri(), expected, len(data), "thing.deb", RELOCK)
    message = str(caught.value)
    assert expected in message
    assert actual in message
    assert path.as_uri() in message
    assert RELOCK in message
    assert _stored_files(content_store) == []
    assert not content_store.path(expected).exists()


def test_fetch_wrong_size(content_store, source):
    path, data, digest = source
    with pytest.raises(HpsforgeError) as caught:
        content_store.fetch(path.as_uri(), digest, len(data) + 1, "thing.deb", RELOCK)
    message = str(caught.value)
    assert f"({len(data) + 1} bytes)" in message
    assert f"({len(data)} bytes)" in message
    assert _stored_files(content_store) == []


def test_fetch_missing_url(content_store, tmp_path):
    url = (tmp_path / "mirror" / "absent.deb").as_uri()
    digest = "0" * 64
    with pytest.raises(HpsforgeError) as caught:
        content_store.fetch(url, digest, 1, "absent.deb", RELOCK)
    assert "absent.deb" in str(caught.value)
    assert _stored_files(content_store) == []


def test_download_bytes_file_url(tmp_path):
    path = tmp_path / "InRelease"
    path.write_bytes(b"signed")
    assert store.download_bytes(path.as_uri(), "InRelease") == b"signed"
    with pytest.raises(HpsforgeError):
        store.download_bytes((tmp_path / "absent").as_uri(), "absent")
