"""Read the text in an image with the OCR pipeline: python client.py IMAGE [--url HOST:PORT]."""

import argparse
import sys

from hps_client import HpsClientError
from hps_client.cli import add_connection_options, connect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", help="path of the image to read")
    add_connection_options(parser, timeout=60.0)
    args = parser.parse_args()
    try:
        with connect(args) as client:
            result = client.ocr(args.image)
    except HpsClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    page = result.ocr_results[0].pruned_result
    for text, score, box in zip(page.rec_texts, page.rec_scores, page.rec_boxes):
        print(f"{score:.3f}  {box}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
