"""Which instances of a model are busy right now, so a request that runs alone may use every CPU.

server.sh gives a model one instance per CPU, each with one Paddle thread: the most requests per
second when they queue. A request that arrives while the other instances are idle would finish
sooner on all the CPUs (measured on 2 CPUs: an OCR line 46 -> 37 ms, an 8-line page 312 -> 188 ms),
so each instance keeps a second predictor with that many threads (see `predictor`) and takes it
when no other instance of its model is executing. A request that starts while another runs takes
the one-thread predictor, so under load nothing is oversubscribed for longer than a request.

The instances are separate processes (Triton's python backend): each owns one byte of a small
file that server.sh's hps_server.launch creates per model (`hps_busy_file`), set while it
executes. A stub restarted after a crash takes its byte back; a byte left set only makes the others
run on one thread, never on too many.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

_state = threading.local()


def bursting() -> bool:
    """Whether the calling thread's current batch runs alone (and may use every CPU)."""
    return getattr(_state, "burst", False)


class Occupancy:
    def __init__(self, path: Path, slot: int):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if not 0 <= slot < size:
                raise ValueError(f"{path}: no slot {slot} among {size} instances")
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.slot = slot
        self.map[slot] = 0

    def __enter__(self) -> bool:
        self.map[self.slot] = 1
        alone = not any(byte for index, byte in enumerate(self.map[:]) if index != self.slot)
        _state.burst = alone
        return alone

    def __exit__(self, *exc_info) -> None:
        _state.burst = False
        self.map[self.slot] = 0

    def close(self) -> None:
        self.map[self.slot] = 0
        self.map.close()


class _Idle:
    """No occupancy file (one instance, or threads given): never bursts."""

    def __enter__(self) -> bool:
        _state.burst = False
        return False

    def __exit__(self, *exc_info) -> None:
        pass

    def close(self) -> None:
        pass


IDLE = _Idle()


def instance_slot(instance_name: str) -> int:
    """The instance's index from Triton's instance name ("ocr_0_1" -> 1)."""
    tail = instance_name.rsplit("_", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"cannot tell the instance index of {instance_name!r}")
    return int(tail)
