"""Segment and tag Chinese text: python client.py TEXT [TEXT ...] [--url HOST:PORT]."""

import argparse
import sys

from hps_client import Client, HpsClientError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("texts", nargs="+", help="sentences to analyse")
    parser.add_argument("--url", default="localhost:8000", help="server address (gRPC: port 8001)")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args()
    try:
        with Client(args.url, protocol=args.protocol, timeout=args.timeout) as client:
            result = client.lexical_analysis(args.texts)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item in result.results:
        print(" ".join(f"{word}/{tag}" for word, tag in zip(item.words, item.tags)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
