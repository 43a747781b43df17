"""Segment and tag Chinese text: python client.py TEXT [TEXT ...] [--url HOST:PORT]."""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("texts", nargs="+", help="sentences to analyse")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    try:
        with connect(args) as client:
            result = client.lexical_analysis(args.texts)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item in result.results:
        print(" ".join(f"{word}/{tag}" for word, tag in zip(item.words, item.tags)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
