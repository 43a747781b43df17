"""Run the model on named tensors: python client.py INPUTS.json [--url HOST:PORT].

INPUTS.json holds {"NAME": nested list, ...}, one entry per input of the model; every output is
printed as JSON ({"name", "dtype", "shape", "data"}), one a line.
"""

import argparse
import json
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect

MODEL = "__MODEL__"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", help="a JSON file: each input tensor of the model by name")
    add_connection_options(parser, timeout=30.0)
    args = parser.parse_args()
    with open(args.inputs, encoding="utf-8") as stream:
        inputs = json.load(stream)
    try:
        with connect(args) as client:
            envelope = client.infer(MODEL, {"inputs": inputs})
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for output in envelope.result["outputs"]:
        print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
