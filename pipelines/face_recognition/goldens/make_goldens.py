"""The face_recognition goldens: write no_face.png, or run cases.toml against a server and print
what it measures.

    python3 make_goldens.py no-face [OUT_DIR]          # no_face.png (default: this folder); stdlib only
    .venv/bin/python pipelines/face_recognition/goldens/make_goldens.py measure --url HOST:PORT
        [--fixtures DIR]                                # from the project root, in the host environment

`measure` runs every case of cases.toml in order (through build/bundle/goldens.py's runner, the one the
conformance suite uses) and prints, for each path a case
checks, the value the server gave, in full precision, with "ok" or "DIFF" against cases.toml;
that is how the expected values are re-measured. It exits 1 if a case does not pass. DIR holds
the locked fixtures (portraits/<name>.jpg); by default they are verified and extracted from the
content store as the conformance suite does.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIPELINE = HERE.parent.name
NO_FACE = "no_face.png"


def no_face_png() -> bytes:
    """A 64x64 mid-grey PNG, written with zlib so its bytes never depend on an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * 64 * 3 for _ in range(64))
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def fixtures(given: Path | None) -> Path:
    if given is not None:
        return given
    from hpsforge.core.pipelines import load_pipelines
    from hpsforge.inputs import model_files
    from hpsforge.inputs.store import cache_root

    folder = cache_root() / "fixtures" / PIPELINE
    model_files.extract(PIPELINE, load_pipelines()[PIPELINE].fixtures, folder)
    return folder


def measure(http: str, fixtures_dir: Path) -> int:
    sys.path.insert(0, str(HERE.parents[2] / "tests" / "conformance"))
    import wire

    from hpsforge.bundle import goldens

    def send(model: str, request: dict) -> dict:
        status, envelope = wire.infer(http, model, request)
        return envelope if status == 200 else {"errorCode": None, "errorMsg": f"HTTP {status}: {envelope}"}

    run = goldens.run(HERE.parent, send, fixtures_dir)
    for outcome in run.outcomes:
        case, envelope, found = outcome.case, outcome.envelope, outcome.problems
        print(f"{'ok  ' if not found else 'FAIL'} {case.name} ({case.model}, {outcome.milliseconds:.0f} ms)")
        if case.error_code is not None or envelope.get("errorCode") != 0:
            print(f"     errorCode {envelope.get('errorCode')}: {envelope.get('errorMsg')}")
            continue
        result = envelope.get("result")
        for path in [*case.exact, *case.close, *case.at_least, *case.length]:
            value = goldens.lookup(result, path)
            shown = (
                "missing"
                if value is goldens.MISSING
                else (
                    f"length {len(value)}"
                    if path in case.length and isinstance(value, list)
                    else json.dumps(value, ensure_ascii=False)
                )
            )
            mark = "DIFF" if any(problem.startswith(f"{path}:") for problem in found) else "ok  "
            print(f"     {mark} {path} = {shown}")
        for variable in case.save:
            print(f"     saved {variable} = {run.saved.get(variable)!r}")
    failed = sum(1 for outcome in run.outcomes if outcome.problems)
    print(f"{len(run.outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("no-face", help=f"write {NO_FACE}")
    write.add_argument("out", nargs="?", type=Path, default=HERE, metavar="OUT_DIR")
    run = commands.add_parser("measure", help="run cases.toml against a server and print the values")
    run.add_argument("--url", required=True, help="the server's HTTP HOST:PORT")
    run.add_argument("--fixtures", type=Path, help="folder holding portraits/<name>.jpg")
    args = parser.parse_args()
    if args.command == "no-face":
        (args.out / NO_FACE).write_bytes(no_face_png())
        print(args.out / NO_FACE)
        return 0
    url = args.url.removeprefix("http://").rstrip("/")
    return measure(url, fixtures(args.fixtures))


if __name__ == "__main__":
    sys.exit(main())
