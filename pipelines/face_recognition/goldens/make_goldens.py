"""Run the face recognition golden scenario against a live server; write or check expected.json.

    python3 make_goldens.py --url http://localhost:8000 --portraits DIR            # check
    python3 make_goldens.py --url http://localhost:8000 --portraits DIR --write    # re-measure
DIR holds the fixture portraits (obama.jpg, obama2.jpg, obama3.jpg, biden.jpg from the
face_recognition 1.3.0 sdist). Standard library only. In requests, "fixture:portraits/X" and
"golden:X" stand for the base64 of that file, and "$index" (in requests, results and error
messages) for the key the first step built.
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
import time
import urllib.request
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.json"
NO_FACE = "no_face.png"
TOLERANCE = {"bbox": 2.0, "score": 0.01, "recScore": 0.005}

BUILD, ADD = "face-recognition-index-build", "face-recognition-index-add"
REMOVE, INFER = "face-recognition-index-remove", "face-recognition-infer"


def portrait(name: str) -> str:
    return f"fixture:portraits/{name}"


def infer(name: str, **fields) -> dict:
    return {"image": portrait(name), "indexKey": "$index", "visualize": False, **fields}


GALLERY = [{"image": portrait("obama.jpg"), "label": "obama"},
           {"image": portrait("biden.jpg"), "label": "biden"}]
STEPS = [
    ("build the gallery", BUILD, {"imageLabelPairs": GALLERY}),
    ("obama2 is obama", INFER, infer("obama2.jpg")),
    ("obama3 is obama", INFER, infer("obama3.jpg")),
    ("biden is biden", INFER, infer("biden.jpg")),
    ("add obama3 as obama", ADD, {"indexKey": "$index",
                                  "imageLabelPairs": [{"image": portrait("obama3.jpg"), "label": "obama"}]}),
    ("remove obama.jpg (id 0)", REMOVE, {"indexKey": "$index", "ids": [0]}),
    ("obama2 still obama, via obama3", INFER, infer("obama2.jpg")),
    ("obama2 under recThreshold 0.6: no match", INFER, infer("obama2.jpg", recThreshold=0.6)),
    ("no index: detection only, annotated image by default", INFER, {"image": portrait("biden.jpg")}),
    ("a gallery image without a face", BUILD, {"imageLabelPairs": [
        GALLERY[0], {"image": f"golden:{NO_FACE}", "label": "nobody"}]}),
    ("an unknown id", REMOVE, {"indexKey": "$index", "ids": [0]}),
    ("an unknown index", INFER, infer("obama2.jpg", indexKey="0" * 32)),
]


def no_face_png() -> bytes:
    """A 64x64 mid-grey PNG, written with zlib so its bytes never depend on an image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * 64 * 3 for _ in range(64))
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def resolve(value, portraits: Path, key: str | None):
    if isinstance(value, dict):
        return {name: resolve(item, portraits, key) for name, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, portraits, key) for item in value]
    if value == "$index":
        return key
    if isinstance(value, str) and value.startswith(("fixture:portraits/", "golden:")):
        path = portraits / value.split("/", 1)[1] if value.startswith("fixture:") else HERE / value[7:]
        return base64.b64encode(path.read_bytes()).decode()
    return value


def call(url: str, model: str, body: dict) -> tuple[dict, float]:
    payload = {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1], "data": [json.dumps(body)]}]}
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        raw = response.read()
    return json.loads(json.loads(raw)["outputs"][0]["data"][0]), time.perf_counter() - started


def summary(answer: dict, key: str | None) -> dict:
    """What a golden pins down: no log id, the random index key as "$index", no image bytes."""
    if answer["errorCode"] != 0:
        message = answer["errorMsg"].replace(key, "$index") if key else answer["errorMsg"]
        return {"errorCode": answer["errorCode"], "errorMsg": message}
    result = dict(answer["result"])
    if "indexKey" in result:
        result["indexKey"] = "$index"
    if result.get("image"):
        result["image"] = "<base64 JPEG>" if result["image"].startswith("/9j/") else "<not a JPEG>"
    return {"errorCode": 0, "result": result}


def compare(expected, got, path: str, problems: list[str]) -> None:
    if isinstance(expected, dict) and isinstance(got, dict):
        if expected.keys() != got.keys():
            problems.append(f"{path}: keys {sorted(got)} != {sorted(expected)}")
            return
        for name in expected:
            compare(expected[name], got[name], f"{path}.{name}", problems)
    elif isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            problems.append(f"{path}: {len(got)} items != {len(expected)}")
            return
        for index, (want, have) in enumerate(zip(expected, got)):
            compare(want, have, f"{path}[{index}]", problems)
    elif isinstance(expected, float) or isinstance(got, float):
        field = "bbox" if ".bbox" in path else "recScore" if ".recResults" in path else "score"
        if not isinstance(got, (int, float)) or abs(expected - got) > TOLERANCE[field]:
            problems.append(f"{path}: {got} != {expected} (tolerance {TOLERANCE[field]})")
    elif expected != got:
        problems.append(f"{path}: {got!r} != {expected!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--portraits", type=Path, required=True)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.write:
        (HERE / NO_FACE).write_bytes(no_face_png())
    key, measured, timings = None, [], []
    for name, model, request in STEPS:
        answer, seconds = call(args.url.rstrip("/"), model, resolve(request, args.portraits, key))
        if key is None and answer.get("result", {}).get("indexKey"):
            key = answer["result"]["indexKey"]
        if model == INFER:
            timings.append(seconds)
        measured.append({"name": name, "endpoint": model, "request": request, "expect": summary(answer, key)})
    print(f"infer round trips: {', '.join(f'{s * 1000:.0f} ms' for s in timings)}")
    if args.write:
        document = {"tolerance": TOLERANCE, "steps": measured}
        EXPECTED.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {EXPECTED}")
        return 0
    expected = json.loads(EXPECTED.read_text())["steps"]
    failed = 0
    for want, have in zip(expected, measured):
        problems: list[str] = []
        compare(want["expect"], have["expect"], "", problems)
        failed += bool(problems)
        print(f"{'ok  ' if not problems else 'FAIL'} {want['name']}" + "".join(f"\n     {p}" for p in problems))
    print(f"{len(expected) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
