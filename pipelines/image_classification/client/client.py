"""Classify an image: python client.py IMAGE [--topk 2] [--url HOST:PORT]."""

import argparse
import sys

from hps_client import Client, HpsClientError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", help="path of the image to classify")
    parser.add_argument("--topk", type=int, default=None, help="how many categories (server default if unset)")
    parser.add_argument("--url", default="localhost:8000", help="server address (gRPC: port 8001)")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args()
    try:
        with Client(args.url, protocol=args.protocol, timeout=args.timeout) as client:
            result = client.classify(args.image, topk=args.topk)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for category in result.categories:
        print(f"{category.score:.4f}  {category.id}  {category.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
