"""Detect objects in an image: python client.py IMAGE [--threshold 0.5] [--url HOST:PORT].

Prints one detected object a line: score, class id, class name and the box (x1 y1 x2 y2, pixels).
"""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect
from hps_client.encoding import to_base64

MODEL = "__MODEL__"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="path of the image")
    parser.add_argument("--threshold", type=float, default=None, help="lowest score kept (server default if unset)")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    request = {"image": to_base64(args.image)}
    if args.threshold is not None:
        request["threshold"] = args.threshold
    try:
        with connect(args) as client:
            envelope = client.infer(MODEL, request)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for found in envelope.result["detectedObjects"]:
        box = " ".join(f"{value:.1f}" for value in found["bbox"])
        print(f"{found['score']:.4f}  {found['categoryId']}  {found['categoryName']}  {box}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
