"""hps-client: call an hpsforge server from the shell and print the result as JSON.

Exit codes: 0 success, 1 error answer (the server's message on stderr) or bad input,
2 server unavailable (after retries) or timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence, Tuple

from pydantic import BaseModel

from . import __version__
from .client import Client
from .errors import HpsClientError, ServerError, UnavailableError


def _pair(text: str) -> Tuple[str, str]:
    # Split on the last "=" so that paths may contain one.
    image, sep, label = text.rpartition("=")
    if not sep or not image or not label:
        raise argparse.ArgumentTypeError(f"expected IMAGE=LABEL, got {text!r}")
    return image, label


def add_connection_options(parser: argparse.ArgumentParser, timeout: float = 30.0) -> None:
    """--url, --protocol, --timeout, --retries: what `connect` needs (shared by the pipelines' clients)."""
    parser.add_argument("--url", default="localhost:8000", help="host:port (default %(default)s; gRPC: 8001)")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds per attempt")
    parser.add_argument("--retries", type=int, default=3, help="retries when unavailable")


def connect(args: argparse.Namespace) -> Client:
    """A client for the connection options `add_connection_options` parsed."""
    return Client(args.url, args.protocol, timeout=args.timeout, retries=args.retries)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hps-client", description="Call an hpsforge Triton server.")
    add_connection_options(p)
    p.add_argument("--log-id", help="request id sent as logId (default: a new uuid4)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("ocr", help="OCR of an image")
    c.add_argument("image")
    c = sub.add_parser("classify", help="image classification")
    c.add_argument("image")
    c.add_argument("--topk", type=int)
    c = sub.add_parser("lexical-analysis", help="Chinese word segmentation and tagging")
    c.add_argument("texts", nargs="+", metavar="TEXT")
    c = sub.add_parser("face-index-build", help="build a face index from IMAGE=LABEL pairs")
    c.add_argument("pairs", nargs="+", type=_pair, metavar="IMAGE=LABEL")
    c = sub.add_parser("face-index-add", help="add IMAGE=LABEL pairs to a face index")
    c.add_argument("pairs", nargs="+", type=_pair, metavar="IMAGE=LABEL")
    c.add_argument("--index-key", required=True)
    c = sub.add_parser("face-index-remove", help="remove vectors by id from a face index")
    c.add_argument("ids", nargs="+", type=int, metavar="ID")
    c.add_argument("--index-key", required=True)
    c = sub.add_parser("face-recognize", help="detect and identify faces")
    c.add_argument("image")
    c.add_argument("--index-key")
    c = sub.add_parser("stages", help="where requests spend their time, per model and stage (metrics port)")
    c.add_argument(
        "--metrics-url", default="localhost:8002", help="the server's metrics host:port (default %(default)s)"
    )
    c.add_argument("--watch", type=float, metavar="SECONDS", help="over the next SECONDS instead of since the start")
    return p


def _stages(args: argparse.Namespace) -> int:
    import time

    from . import stages

    try:
        before = stages.parse(stages.scrape(args.metrics_url)) if args.watch else {}
        if args.watch:
            time.sleep(args.watch)
        rows = stages.summary(stages.difference(stages.parse(stages.scrape(args.metrics_url)), before))
    except OSError as exc:
        print(f"hps-client: cannot read metrics from {args.metrics_url}: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("hps-client: no timed requests (hps_stage_seconds) yet", file=sys.stderr)
        return 1
    print(stages.table(rows))
    return 0


def _call(client: Client, args: argparse.Namespace) -> BaseModel:
    log_id = args.log_id
    if args.command == "ocr":
        return client.ocr(args.image, log_id=log_id)
    if args.command == "classify":
        return client.classify(args.image, args.topk, log_id=log_id)
    if args.command == "lexical-analysis":
        return client.lexical_analysis(args.texts, log_id=log_id)
    if args.command == "face-index-build":
        return client.build_index(args.pairs, log_id=log_id)
    if args.command == "face-index-add":
        return client.add_to_index(args.pairs, args.index_key, log_id=log_id)
    if args.command == "face-index-remove":
        return client.remove_from_index(args.ids, args.index_key, log_id=log_id)
    if args.command == "face-recognize":
        return client.recognize(args.image, args.index_key, log_id=log_id)
    raise AssertionError(args.command)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stages":
        return _stages(args)
    try:
        with connect(args) as client:
            result = _call(client, args)
    except ServerError as exc:
        print(f"hps-client: error {exc.error_code}: {exc.message} (logId {exc.log_id})", file=sys.stderr)
        return 1
    except UnavailableError as exc:
        print(f"hps-client: unavailable: {exc}", file=sys.stderr)
        return 2
    except (HpsClientError, OSError, ValueError) as exc:
        print(f"hps-client: {exc}", file=sys.stderr)
        return 1
    # exclude_unset: print what the server sent, not defaults the client filled in.
    doc = result.model_dump(mode="json", by_alias=True, exclude_unset=True)
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
