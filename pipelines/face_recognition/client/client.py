# The usage lines keep their indent in --help (the formatter would dedent a docstring).
# fmt: off
"""Face recognition against a gallery index.

  python client.py build IMAGE=LABEL [IMAGE=LABEL ...]     -> prints the new index key
  python client.py add --index-key K IMAGE=LABEL [...]
  python client.py remove --index-key K ID [ID ...]
  python client.py recognize --index-key K IMAGE
"""
# fmt: on

import argparse
import json
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect


def _pairs(items):
    pairs = []
    for item in items:
        image, separator, label = item.rpartition("=")
        if not separator or not image or not label:
            raise SystemExit(f"expected IMAGE=LABEL, got {item!r}")
        pairs.append((image, label))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_options(parser, timeout=60.0)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build").add_argument("pairs", nargs="+")
    add = commands.add_parser("add")
    add.add_argument("--index-key", required=True)
    add.add_argument("pairs", nargs="+")
    remove = commands.add_parser("remove")
    remove.add_argument("--index-key", required=True)
    remove.add_argument("ids", nargs="+", type=int)
    recognize = commands.add_parser("recognize")
    recognize.add_argument("--index-key", required=True)
    recognize.add_argument("image")
    args = parser.parse_args()
    try:
        with connect(args) as client:
            if args.command == "build":
                result = client.build_index(_pairs(args.pairs))
            elif args.command == "add":
                result = client.add_to_index(_pairs(args.pairs), args.index_key)
            elif args.command == "remove":
                result = client.remove_from_index(args.ids, args.index_key)
            else:
                result = client.recognize(args.image, index_key=args.index_key)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result.model_dump(by_alias=True, exclude_none=True), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
