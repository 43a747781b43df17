"""Run every case of cases.toml through the pipeline's own model, in-process (the bundle's
model.py, as Triton would load it, without Triton), and check it with build/bundle/goldens.py (the checks
the conformance suite applies to a server's answers).

Inside the pipeline image, from a checkout (build/bundle/goldens.py is read):
    python3 make_goldens.py [--print]
--print shows each answer (words/tags), which is how the expected values in cases.toml were taken.
"""

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The one golden-case runner (build/bundle/goldens.py: standard library + pydantic only), loaded by path,
# so a case passes here exactly when it would pass against a server.
_spec = importlib.util.spec_from_file_location("goldens", HERE.parents[2] / "build" / "bundle" / "goldens.py")
goldens = sys.modules["goldens"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goldens)

from hps_server.local import LocalModels  # noqa: E402  (the pipeline image's server bundle)


def main() -> int:
    show = "--print" in sys.argv
    models = LocalModels(Path("/opt/hps/server"))
    run = goldens.run(HERE.parent, models.send)
    for outcome in run.outcomes:
        print(f"{outcome.case.name}: {'FAIL ' + '; '.join(outcome.problems) if outcome.problems else 'ok'}")
        if show:
            for item in (outcome.envelope.get("result") or {}).get("results", []):
                print("   ", " ".join(f"{word}/{tag}" for word, tag in zip(item["words"], item["tags"], strict=False)))
            if outcome.envelope.get("errorCode"):
                print("   ", outcome.envelope["errorCode"], outcome.envelope["errorMsg"])
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
