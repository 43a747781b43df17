"""tests/support/disk.py: the free-space report a test run ends with, and the warning it starts with."""

from __future__ import annotations

from tests.support import disk


def test_the_report_says_how_far_free_space_fell(tmp_path, monkeypatch):
    free = iter([60e9, 52e9, 55e9])
    monkeypatch.setattr(disk, "free_bytes", lambda path: next(free))
    watch = disk.DiskWatch({"the store": tmp_path / "not" / "made" / "yet", "temporary files": tmp_path})
    watch.sample()
    watch.sample()
    assert watch.lines() == [
        "the store, temporary files: 60.0 GB free at the start, 52.0 GB at the least: free space fell by up to 8.0 GB"
    ]
    assert watch.warning() is None


def test_too_little_room_is_said_at_the_start(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "free_bytes", lambda path: 12e9)
    warning = disk.DiskWatch({"the engine": tmp_path}).warning()
    assert warning.startswith("the engine: only 12.0 GB free")
    assert f"about {disk.WHOLE_RUN_NEEDS_GB} GB" in warning and "No space left on device" in warning
