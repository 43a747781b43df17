"""Run every case of cases.toml through the pipeline's own code, in-process, and check it.

Inside the runtime image, with hps_server and server/lib on PYTHONPATH:
    python3 make_goldens.py MODELS/lac [--print]
MODELS/lac holds the flattened lac artifact (__model__, parameter files, *.dic). --print shows
each answer (words/tags), which is how the expected values in cases.toml were taken.
"""

import json
import sys
import tomllib
from pathlib import Path

from hps_server import ServerContext, paddle_predictor
from lexical_analysis import Network, Postprocess, Tokenizer


def lookup(document, path):
    for part in path.split("."):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def problems(case, envelope):
    if "error_code" in case:
        found = [] if envelope["errorCode"] == case["error_code"] else [f"errorCode {envelope['errorCode']}"]
        return found + ([] if case.get("error_contains", "") in envelope["errorMsg"] else ["errorMsg"])
    if envelope["errorCode"] != 0:
        return [f"error {envelope['errorCode']}: {envelope['errorMsg']}"]
    found = [path for path, value in case.get("exact", {}).items() if lookup(envelope["result"], path) != value]
    return found + [path for path, size in case.get("length", {}).items() if len(lookup(envelope["result"], path)) != size]


def main() -> int:
    model_dir, show = Path(sys.argv[1]), "--print" in sys.argv
    context = ServerContext(root=model_dir.parent.parent, model_name="lexical-analysis-network")
    tokenizer, postprocess = Tokenizer(model_dir), Postprocess(model_dir)
    # The same predictor settings as the served network model (see its model.py).
    network = Network(paddle_predictor(None, None, context, model_dir=model_dir, onednn=False, ir_optim=False))
    cases = tomllib.loads((Path(__file__).parent / "cases.toml").read_text(encoding="utf-8"))["cases"]
    failed = 0
    for case in cases:
        ids, lengths, metas = tokenizer([json.dumps(case["request"], ensure_ascii=False).encode()])
        [tags] = network([(ids, lengths)])
        envelope = json.loads(postprocess(metas, tags)[0])
        found = problems(case, envelope)
        failed += bool(found)
        print(f"{case['name']}: {'FAIL ' + ', '.join(found) if found else 'ok'}")
        if show:
            for item in envelope.get("result", {}).get("results", []):
                print("   ", " ".join(f"{word}/{tag}" for word, tag in zip(item["words"], item["tags"])))
            if envelope["errorCode"]:
                print("   ", envelope["errorCode"], envelope["errorMsg"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
