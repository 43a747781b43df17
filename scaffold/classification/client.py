"""Classify an image: python client.py IMAGE [--topk 2] [--url HOST:PORT]."""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect
from hps_client.encoding import to_base64

MODEL = "__MODEL__"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", help="path of the image to classify")
    parser.add_argument("--topk", type=int, default=None, help="how many categories (server default if unset)")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    request = {"image": to_base64(args.image)}
    if args.topk is not None:
        request["topk"] = args.topk
    try:
        with connect(args) as client:
            envelope = client.infer(MODEL, request)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for category in envelope.result["categories"]:
        print(f"{category['score']:.4f}  {category['id']}  {category['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
