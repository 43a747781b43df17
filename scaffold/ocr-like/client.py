"""Read the text of a text-line image: python client.py IMAGE [--url HOST:PORT].

Prints the confidence and the text.
"""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect
from hps_client.encoding import to_base64

MODEL = "__MODEL__"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="path of the text-line image")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    try:
        with connect(args) as client:
            envelope = client.infer(MODEL, {"image": to_base64(args.image)})
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{envelope.result['score']:.4f}  {envelope.result['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
