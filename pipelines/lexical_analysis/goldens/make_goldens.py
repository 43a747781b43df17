"""Run every case of cases.toml through the pipeline's own code, in-process, and check it with
tests/conformance/goldens.py (the checks the conformance suite applies to a server's answers).

Inside the runtime image, from a checkout (tests/conformance is read), with hps_server and
server/lib on PYTHONPATH:
    python3 make_goldens.py MODELS/lac [--print]
MODELS/lac holds the flattened lac artifact (__model__, parameter files, *.dic). --print shows
each answer (words/tags), which is how the expected values in cases.toml were taken.
"""

import json
import sys
import tomllib
from pathlib import Path

# The conformance suite's case model and checks (tests/conformance/goldens.py), so a case passes
# here exactly when it would pass against a server. goldens.py reads TOML with tomli; the runtime
# image has the standard library's tomllib, which has the same API.
sys.modules.setdefault("tomli", tomllib)
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "conformance"))

import goldens  # noqa: E402
from hps_server import ServerContext, paddle_predictor  # noqa: E402
from lexical_analysis import Network, Postprocess, Tokenizer  # noqa: E402


def main() -> int:
    model_dir, show = Path(sys.argv[1]), "--print" in sys.argv
    context = ServerContext(root=model_dir.parent.parent, model_name="lexical-analysis-network")
    tokenizer, postprocess = Tokenizer(model_dir), Postprocess(model_dir)
    # The same predictor settings as the served network model (see its model.py).
    network = Network(paddle_predictor(None, None, context, model_dir=model_dir, onednn=False, ir_optim=False))
    failed = 0
    for case in goldens.load(Path(__file__).resolve().parents[1]):
        ids, lengths, metas = tokenizer([json.dumps(case.request, ensure_ascii=False).encode()])
        [tags] = network([(ids, lengths)])
        envelope = json.loads(postprocess(metas, tags)[0])
        found = goldens.problems(case, envelope)
        failed += bool(found)
        print(f"{case.name}: {'FAIL ' + '; '.join(found) if found else 'ok'}")
        if show:
            for item in envelope.get("result", {}).get("results", []):
                print("   ", " ".join(f"{word}/{tag}" for word, tag in zip(item["words"], item["tags"])))
            if envelope["errorCode"]:
                print("   ", envelope["errorCode"], envelope["errorMsg"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
