"""The face gallery store under concurrent writers (pipelines/face_recognition/server/lib, no dlib
needed: the store takes embeddings as arrays). Separate processes, each with its own GalleryStore,
add faces to one index while another removes ids and another keeps reading, as Triton's
index-add, index-remove and infer models do: afterwards the index holds exactly the survivors,
with unique, never reused ids and their own labels, and no reader ever saw a partial file."""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from queue import Empty

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pipelines" / "face_recognition" / "server" / "lib"))

from face_recognition_pipeline.gallery import GalleryStore

WRITERS, ADDS, SEEDS, DIM = 4, 12, 8, 128


def _adder(root: str, key: str, writer: int, queue) -> None:
    store = GalleryStore(Path(root))
    for n in range(ADDS):
        label = f"w{writer}-{n}"
        ids, _ = store.add(key, [label], np.full((1, DIM), writer, np.float32))
        queue.put((ids[0], label))


def _remover(root: str, key: str, queue) -> None:
    store = GalleryStore(Path(root))
    for id_ in range(SEEDS):
        store.remove(key, [id_])
        queue.put(id_)


def _reader(root: str, key: str, until: float, queue) -> None:
    store = GalleryStore(Path(root))
    reads = 0
    while time.monotonic() < until:
        gallery = store.load(key)  # raises IndexCorrupt if it ever saw a partial file
        assert len(gallery.labels) == len(gallery.ids) == len(gallery.embeddings)
        reads += 1
    queue.put(reads)


def _drain(queue, count: int, timeout: float = 60.0) -> list:
    items = []
    try:
        while len(items) < count:
            items.append(queue.get(timeout=timeout))
    except Empty:
        pass  # a dead child shows up as missing items instead of a hang
    return items


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path):
    store = GalleryStore(tmp_path)
    key, _ = store.create([f"seed-{n}" for n in range(SEEDS)], np.zeros((SEEDS, DIM), np.float32))
    context = multiprocessing.get_context("fork")  # Linux only, as the store is (fcntl)
    added, removed, reads = context.Queue(), context.Queue(), context.Queue()
    workers = [context.Process(target=_adder, args=(str(tmp_path), key, writer, added)) for writer in range(WRITERS)]
    workers.append(context.Process(target=_remover, args=(str(tmp_path), key, removed)))
    workers.append(context.Process(target=_reader, args=(str(tmp_path), key, time.monotonic() + 2.0, reads)))
    for worker in workers:
        worker.start()
    # Drained before join: a child cannot exit while its queue items are unflushed.
    got = dict(_drain(added, WRITERS * ADDS))
    gone = _drain(removed, SEEDS)
    read_count = _drain(reads, 1)
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * len(workers)
    assert sorted(gone) == list(range(SEEDS)) and read_count and read_count[0] > 0

    final = GalleryStore(tmp_path).load(key)
    expected_ids = set(range(SEEDS, SEEDS + WRITERS * ADDS))
    assert len(final) == WRITERS * ADDS
    assert set(got) == expected_ids and sorted(final.ids.tolist()) == sorted(expected_ids)
    assert dict(zip(final.ids.tolist(), final.labels, strict=True)) == got
    for id_, label, row in zip(final.ids.tolist(), final.labels, final.embeddings, strict=True):
        assert (row == int(label[1:].split("-")[0])).all(), f"id {id_} ({label}) has another writer's embedding"
    assert final.next_id == SEEDS + WRITERS * ADDS
