"""fetch: wheels for the images' own platform, checked against the lock, stored by hash."""

import hashlib

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.images import containers
from hpsforge.inputs import wheelhouse
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import requirements_lock

# A tiny pure-Python wheel stands in for the 360 MB cpu wheelhouse.
SIX = "six==1.17.0"
SIX_WHEEL_SHA256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"


def small_lock(tmp_path, hashes: list[str]):
    path = tmp_path / "small.txt"
    body = f"{SIX} \\\n" + " \\\n".join(f"    --hash=sha256:{h}" for h in hashes) + "\n"
    path.write_text(requirements_lock.header("test lock", "0" * 64) + body)
    return path


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_stores_verified_wheels_and_a_second_run_downloads_nothing(
    shared_images, tmp_path, isolated_cache, monkeypatch
):
    lock = small_lock(tmp_path, [SIX_WHEEL_SHA256])
    folder = containers.fetch_wheelhouse("small", shared_images["rc"], lock_path=lock)
    wheel = folder / "six-1.17.0-py2.py3-none-any.whl"
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == SIX_WHEEL_SHA256
    assert ContentStore().path(SIX_WHEEL_SHA256).samefile(wheel)

    def no_download(*args, **kwargs):
        raise AssertionError("a second fetch of an unchanged lock ran pip")

    monkeypatch.setattr(containers, "run_in_rc", no_download)
    assert containers.fetch_wheelhouse("small", shared_images["rc"], lock_path=lock) == folder


def test_fetch_refuses_a_wheel_that_differs_from_the_lock(shared_images, tmp_path, isolated_cache):
    wrong = "1" * 64  # a lock edited by hand: the hash no longer matches the published wheel
    lock = small_lock(tmp_path, [wrong])
    with pytest.raises(HpsforgeError) as refused:
        containers.fetch_wheelhouse("small", shared_images["rc"], lock_path=lock)
    message = str(refused.value)
    assert "six" in message and wrong in message and SIX_WHEEL_SHA256 in message
    assert not wheelhouse.wheelhouse_dir("small").exists(), "a wheelhouse was published anyway"


def test_fetch_refuses_a_stored_wheel_changed_on_disk(shared_images, tmp_path, isolated_cache):
    lock = small_lock(tmp_path, [SIX_WHEEL_SHA256])
    containers.fetch_wheelhouse("small", shared_images["rc"], lock_path=lock)
    stored = ContentStore().path(SIX_WHEEL_SHA256)
    stored.write_bytes(stored.read_bytes() + b"tampered")
    with pytest.raises(HpsforgeError) as refused:
        containers.fetch_wheelhouse("small", shared_images["rc"], lock_path=lock)
    message = str(refused.value)
    assert "six-1.17.0-py2.py3-none-any.whl" in message
    assert SIX_WHEEL_SHA256 in message and "actual" in message
