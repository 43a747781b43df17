"""Classify an image: python client.py IMAGE [--topk 2] [--url HOST:PORT]."""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", help="path of the image to classify")
    parser.add_argument("--topk", type=int, default=None, help="how many categories (server default if unset)")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    try:
        with connect(args) as client:
            result = client.classify(args.image, topk=args.topk)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for category in result.categories:
        print(f"{category.score:.4f}  {category.id}  {category.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
