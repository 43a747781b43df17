"""Read the text in an image with the OCR pipeline: python client.py IMAGE [--url HOST:PORT]."""

import argparse
import sys

from hps_client import Client, HpsClientError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", help="path of the image to read")
    parser.add_argument("--url", default="localhost:8000", help="server address (gRPC: port 8001)")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args()
    try:
        with Client(args.url, protocol=args.protocol, timeout=args.timeout) as client:
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
