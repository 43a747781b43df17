"""Run every case of cases.toml through the pipeline's own code, in-process, and check it with
build/goldens.py (the checks the conformance suite applies to a server's answers).

Inside the runtime image, from a checkout (build/goldens.py is read), with hps_server and
server/lib on PYTHONPATH:
    python3 make_goldens.py MODELS/lac [--print]
MODELS/lac holds the flattened lac artifact (__model__, parameter files, *.dic). --print shows
each answer (words/tags), which is how the expected values in cases.toml were taken.
"""

import importlib.util
import json
import sys
from pathlib import Path

# The conformance suite's case model and checks (build/goldens.py, standard library + pydantic
# only), loaded by path, so a case passes here exactly when it would pass against a server.
_spec = importlib.util.spec_from_file_location("goldens", Path(__file__).resolve().parents[3] / "build" / "goldens.py")
goldens = sys.modules["goldens"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goldens)

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
