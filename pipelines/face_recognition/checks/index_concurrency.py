"""Concurrency check of the face gallery index: many writers at once, then count.

  store mode (default): PROCS processes each append ADDS single faces to one index through
      GalleryStore, while one more process removes ids and another keeps reading; afterwards the
      index must hold exactly the survivors, with unique ids and the right labels.
      PYTHONPATH=pipelines/face_recognition/server/lib python index_concurrency.py [--procs 8 --adds 25]
  server mode: the same through a running Triton server's four endpoints (threads instead of
      processes; index-add and index-remove run in separate Triton processes).
      python index_concurrency.py --url http://localhost:8000 --portraits DIR
Prints "N passed, N failed" and exits non-zero on a failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Empty


def _adder(root: str, key: str, proc: int, adds: int, queue) -> None:
    import numpy as np

    from face_recognition_pipeline.gallery import GalleryStore

    store = GalleryStore(Path(root))
    for n in range(adds):
        label = f"p{proc}-{n}"
        ids, _ = store.add(key, [label], np.full((1, 128), proc, np.float32))
        queue.put((ids[0], label))


def _remover(root: str, key: str, ids: list[int], queue) -> None:
    from face_recognition_pipeline.gallery import GalleryStore

    store = GalleryStore(Path(root))
    for id_ in ids:
        store.remove(key, [id_])
        queue.put(id_)


def _reader(root: str, key: str, seconds: float, queue) -> None:
    from face_recognition_pipeline.gallery import GalleryStore

    store = GalleryStore(Path(root))
    reads, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        gallery = store.load(key)  # raises IndexCorrupt if it ever saw a partial file
        assert len(gallery.labels) == len(gallery.ids) == len(gallery.embeddings)
        reads += 1
    queue.put(reads)


def _drain(queue, count: int, timeout: float = 120.0) -> list:
    items = []
    try:
        while len(items) < count:
            items.append(queue.get(timeout=timeout))
    except Empty:
        pass
    return items


def check_store(procs: int, adds: int) -> list[tuple[str, bool]]:
    import numpy as np

    from face_recognition_pipeline.gallery import GalleryStore

    root = tempfile.mkdtemp(prefix="face-index-check-")
    store = GalleryStore(Path(root))
    initial = 20
    key, _ = store.create([f"seed-{i}" for i in range(initial)], np.zeros((initial, 128), np.float32))
    ctx = multiprocessing.get_context("spawn")
    added, removed, reads = ctx.Queue(), ctx.Queue(), ctx.Queue()
    workers = [ctx.Process(target=_adder, args=(root, key, p, adds, added)) for p in range(procs)]
    workers.append(ctx.Process(target=_remover, args=(root, key, list(range(initial)), removed)))
    workers.append(ctx.Process(target=_reader, args=(root, key, 3.0, reads)))
    started = time.monotonic()
    for worker in workers:
        worker.start()
    # Drained before join (a child cannot exit with unflushed queue items); a dead child shows
    # up as missing items instead of a hang.
    got = dict(_drain(added, procs * adds))
    gone = _drain(removed, initial)
    read_count = (_drain(reads, 1) or [0])[0]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    final = GalleryStore(Path(root)).load(key)
    shutil.rmtree(root)
    print(f"store: {procs} writers x {adds} adds + {initial} removes + {read_count} reads in {elapsed:.1f} s; "
          f"index holds {len(final)}")
    expected_ids = set(range(initial, initial + procs * adds))
    return [
        ("every worker exited cleanly", all(worker.exitcode == 0 for worker in workers)),
        ("count is adds minus removes", len(final) == procs * adds and len(gone) == initial),
        ("ids are unique and never reused", set(final.ids.tolist()) == expected_ids == set(got)),
        ("each id keeps its label", all(got.get(i) == label for i, label in zip(final.ids.tolist(), final.labels))),
        ("nextId moved past every id", final.next_id == initial + procs * adds),
    ]


def _call(url: str, model: str, body: dict) -> dict:
    payload = {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1], "data": [json.dumps(body)]}]}
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(json.loads(response.read())["outputs"][0]["data"][0])


def check_server(url: str, portraits: Path, adds: int) -> list[tuple[str, bool]]:
    image = base64.b64encode((portraits / "obama.jpg").read_bytes()).decode()
    pairs = [{"image": image, "label": f"seed-{i}"} for i in range(4)]
    built = _call(url, "face-recognition-index-build", {"imageLabelPairs": pairs})
    key = built["result"]["indexKey"]

    def add(n: int) -> dict:
        return _call(url, "face-recognition-index-add",
                     {"indexKey": key, "imageLabelPairs": [{"image": image, "label": f"add-{n}"}]})

    def remove(id_: int) -> dict:
        return _call(url, "face-recognition-index-remove", {"indexKey": key, "ids": [id_]})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        add_jobs = [pool.submit(add, n) for n in range(adds)]
        remove_jobs = [pool.submit(remove, i) for i in built["result"]["ids"]]
        answers = [job.result() for job in add_jobs + remove_jobs]
    elapsed = time.monotonic() - started
    new_ids = [answer["result"]["ids"][0] for answer in answers[:adds] if answer["errorCode"] == 0]
    final = _call(url, "face-recognition-index-add", {"indexKey": key, "imageLabelPairs": [
        {"image": image, "label": "last"}]})
    print(f"server: {adds} adds + 4 removes in {elapsed:.1f} s; index holds {final['result']['imageCount']}")
    return [
        ("every request succeeded", all(answer["errorCode"] == 0 for answer in answers)),
        ("new ids are unique", sorted(new_ids) == list(range(4, 4 + adds))),
        ("count is adds minus removes", final["result"]["imageCount"] == adds + 1),
        ("the next id follows", final["result"]["ids"] == [4 + adds]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--adds", type=int, default=25)
    parser.add_argument("--url")
    parser.add_argument("--portraits", type=Path)
    args = parser.parse_args()
    if args.url:
        checks = check_server(args.url.rstrip("/"), args.portraits, args.adds)
    else:
        checks = check_store(args.procs, args.adds)
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    failed = sum(not ok for _, ok in checks)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
