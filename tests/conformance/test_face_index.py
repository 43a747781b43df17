"""Face index under concurrent writers (face_recognition only): 16 index-add requests and a few
index-remove requests at once, over HTTP. index-add and index-remove are separate Triton models
(separate processes) writing one index file, so this checks their per-index file lock: afterwards
the index must hold exactly the survivors (no lost or duplicated ids, no reused ids) and infer
must still read it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings

BUILD, ADD = "face-recognition-index-build", "face-recognition-index-add"
REMOVE, INFER = "face-recognition-index-remove", "face-recognition-infer"
SEEDS, ADDS, WORKERS = 4, 16, 20


def _call(http: str, model: str, document: dict) -> dict:
    status, envelope = wire.infer(http, model, document)
    assert status == 200, f"{model}: HTTP {status} {str(envelope)[:300]}"
    return envelope


def _ok(http: str, model: str, document: dict) -> dict:
    envelope = _call(http, model, document)
    assert envelope.get("errorCode") == 0, f"{model}: {envelope.get('errorCode')} {envelope.get('errorMsg')}"
    return envelope["result"]


def test_face_index_concurrent_add_remove(pipeline, request):
    if pipeline != "face_recognition":
        pytest.skip("the face index exists only in the face_recognition pipeline")
    # Asked for only now, so other pipelines' servers are not started just to skip.
    server, fixtures_dir = request.getfixturevalue("server"), request.getfixturevalue("fixtures_dir")
    goldens_dir = settings().pipelines_dir / pipeline / "goldens"
    image = goldens.resolve("fixture:portraits/obama.jpg", goldens_dir, fixtures_dir, {})
    built = _ok(server.http, BUILD, {"imageLabelPairs": [{"image": image, "label": f"seed-{n}"} for n in range(SEEDS)]})
    key = built["indexKey"]
    assert built["imageCount"] == SEEDS and built["ids"] == list(range(SEEDS)), built

    def add(n: int) -> dict:
        return _call(server.http, ADD, {"indexKey": key, "imageLabelPairs": [{"image": image, "label": f"add-{n}"}]})

    def remove(id_: int) -> dict:
        return _call(server.http, REMOVE, {"indexKey": key, "ids": [id_]})

    with ThreadPoolExecutor(WORKERS) as pool:
        add_jobs = [pool.submit(add, n) for n in range(ADDS)]
        remove_jobs = [pool.submit(remove, id_) for id_ in range(SEEDS)]
        added = [job.result() for job in add_jobs]
        removed = [job.result() for job in remove_jobs]

    failed = [
        f"{envelope.get('logId')}: {envelope.get('errorCode')} {envelope.get('errorMsg')}"
        for envelope in added + removed
        if envelope.get("errorCode") != 0
    ]
    assert not failed, f"{len(failed)} of {ADDS + SEEDS} concurrent writes failed:\n" + "\n".join(failed)
    new_ids = [envelope["result"]["ids"] for envelope in added]
    assert all(len(ids) == 1 for ids in new_ids), new_ids
    label_of = {ids[0]: f"add-{n}" for n, ids in enumerate(new_ids)}
    # Each add got its own id, right after the seeds: none lost, none given twice.
    assert sorted(label_of) == list(range(SEEDS, SEEDS + ADDS)), f"ids given to the {ADDS} adds: {new_ids}"
    # The writes took turns (one lock per index), so the add given id SEEDS + k saw
    # SEEDS + k + 1 - imageCount removes before it: never fewer than the add before it saw.
    count_of = {envelope["result"]["ids"][0]: envelope["result"]["imageCount"] for envelope in added}
    removes_before = [SEEDS + k + 1 - count_of[SEEDS + k] for k in range(ADDS)]
    assert removes_before == sorted(removes_before) and 0 <= removes_before[0] and removes_before[-1] <= SEEDS, (
        f"imageCount of the adds, in id order: {[count_of[SEEDS + k] for k in range(ADDS)]}"
    )
    assert all(0 <= envelope["result"]["imageCount"] < SEEDS + ADDS for envelope in removed), removed

    # The survivors, counted by one more add: every add kept, every seed gone, the next id new.
    last = _ok(server.http, ADD, {"indexKey": key, "imageLabelPairs": [{"image": image, "label": "last"}]})
    assert last["imageCount"] == ADDS + 1, f"the index holds {last['imageCount'] - 1} faces, expected {ADDS}"
    assert last["ids"] == [SEEDS + ADDS], f"the next id is {last['ids']}, expected [{SEEDS + ADDS}]"
    label_of[SEEDS + ADDS] = "last"
    # Each seed is gone (a second remove is refused); two added ids are there (removable once).
    for id_ in range(SEEDS):
        envelope = _call(server.http, REMOVE, {"indexKey": key, "ids": [id_]})
        assert envelope.get("errorCode") == 422 and f"has no id {id_}" in str(envelope.get("errorMsg")), envelope
    gone = sorted(label_of)[:2]
    assert _ok(server.http, REMOVE, {"indexKey": key, "ids": gone})["imageCount"] == ADDS - 1
    expected = {label for id_, label in label_of.items() if id_ not in gone}

    # Infer still reads the index and sees exactly the survivors: every face is obama.jpg, so each
    # surviving label matches once, with score 1.
    result = _ok(server.http, INFER, {"image": image, "indexKey": key, "visualize": False, "topk": 100})
    assert len(result["faces"]) == 1, result
    matches = result["faces"][0]["recResults"]
    labels = [match["label"] for match in matches]
    assert sorted(labels) == sorted(expected), (
        f"infer matched {sorted(labels)}, the index should hold {sorted(expected)}"
    )
    assert all(abs(match["score"] - 1.0) < 0.005 for match in matches), matches
