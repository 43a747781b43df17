"""How much disk a test run takes: free space sampled through the run, reported at its end.

CI machines share their disks, and how much is free differs from one to the next; a run that
fills the disk fails everywhere at once with ENOSPC. The report says what a run needed, so the
next change that grows it is seen before a machine with less room fails.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_EVERY_S = 2.0
GB = 1e9
# What a whole run took on a fresh machine (free space fell by 50.2 GB, most of it while the gpu
# runtimes build): said at the start, so a machine with less room is named before it fails.
WHOLE_RUN_NEEDS_GB = 51


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


@dataclass
class DiskWatch:
    """The least free space seen on each filesystem the run writes to, sampled in a thread."""

    paths: dict[str, Path]
    started: dict[int, int] = field(init=False)
    least: dict[int, int] = field(init=False, default_factory=dict)
    names: dict[int, list[str]] = field(init=False, default_factory=dict)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._devices = {}
        for name, path in self.paths.items():
            device = os.stat(_existing(path)).st_dev
            self._devices.setdefault(device, _existing(path))
            self.names.setdefault(device, []).append(name)
        self.sample()
        self.started = dict(self.least)
        self._thread = threading.Thread(target=self._run, name="disk-watch", daemon=True)

    def sample(self) -> None:
        for device, path in self._devices.items():
            free = free_bytes(path)
            self.least[device] = min(self.least.get(device, free), free)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def start(self) -> DiskWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def warning(self) -> str | None:
        """A line for the start of the run when a filesystem has less room than a whole run takes."""
        short = [device for device, free in self.started.items() if free < WHOLE_RUN_NEEDS_GB * GB]
        if not short:
            return None
        return (
            "; ".join(
                f"{', '.join(self.names[device])}: only {self.started[device] / GB:.1f} GB free" for device in short
            )
            + f", and a whole run takes about {WHOLE_RUN_NEEDS_GB} GB: it may stop with 'No space left on device'"
        )

    def lines(self) -> list[str]:
        return [
            f"{', '.join(self.names[device])}: {self.started[device] / GB:.1f} GB free at the start, "
            f"{self.least[device] / GB:.1f} GB at the least: free space fell by up to "
            f"{(self.started[device] - self.least[device]) / GB:.1f} GB"
            for device in self._devices
        ]
