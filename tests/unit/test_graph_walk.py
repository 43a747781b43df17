"""BuildGraph.build: every node after its parents, independent nodes side by side, the first
failure raised once the running builds end, nothing started after it."""

from __future__ import annotations

import threading
import time

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.images import graph
from hpsforge.locks.images_lock import ImageRecord


def _record(role: str) -> ImageRecord:
    return ImageRecord(reference=f"hpsforge/{role}:test", digest="sha256:" + "0" * 64, input_sha256="1" * 64)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.most = 0

    def node(self, role: str, parents: tuple[str, ...] = (), seconds: float = 0.05, fail: bool = False) -> graph.Node:
        def build(built: dict[str, ImageRecord], options: graph.BuildOptions) -> ImageRecord:
            assert set(built) == set(parents)  # exactly its parents' records
            with self.lock:
                self.events.append(("start", role))
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
                self.events.append(("end", role))
            if fail:
                raise HpsforgeError(f"{role} failed")
            return _record(role)

        return graph.Node(role, "test", parents, build)


def test_independent_nodes_build_side_by_side_after_their_parents():
    recorder = Recorder()
    walk = graph.BuildGraph(
        [
            recorder.node("base"),
            recorder.node("rc", ("base",)),
            recorder.node("converter", ("base", "rc"), seconds=0.3),
            recorder.node("runtime", ("base", "rc"), seconds=0.3),
            recorder.node("pipeline", ("runtime", "converter")),
        ]
    )
    seen: list[str] = []
    built = walk.build(on_built=lambda node, record, seconds: seen.append(node.role))
    assert list(built) == ["base", "rc", "converter", "runtime", "pipeline"]  # the graph's order
    events = recorder.events
    for child, parent in (("rc", "base"), ("converter", "rc"), ("runtime", "rc"), ("pipeline", "runtime")):
        assert events.index(("start", child)) > events.index(("end", parent))
    assert events.index(("start", "runtime")) < events.index(("end", "converter"))  # side by side
    assert recorder.most == graph.PARALLEL_BUILDS and sorted(seen) == sorted(built)


def test_the_first_failure_is_raised_after_the_running_build_ends_and_nothing_more_starts():
    recorder = Recorder()
    walk = graph.BuildGraph(
        [
            recorder.node("base"),
            recorder.node("converter", ("base",), seconds=0.05, fail=True),
            recorder.node("runtime", ("base",), seconds=0.3),
            recorder.node("pipeline", ("base",)),
            recorder.node("late", ("runtime",)),
        ]
    )
    with pytest.raises(HpsforgeError, match="converter failed"):
        walk.build()
    assert ("end", "runtime") in recorder.events  # the running build was let finish
    assert ("start", "late") not in recorder.events and ("start", "pipeline") not in recorder.events
