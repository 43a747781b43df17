"""Run inside a pipeline image by `nox -s new-pipeline --record-goldens`: answer requests with the
bundle's models in-process (hps_server.local: the same model.py a served request reaches) and print
each envelope as one JSON line after MARKER.

    python3 answer_requests.py REQUESTS.json     # [{"model": ..., "request": {...}}, ...]
"""

import json
import os
import sys
from pathlib import Path

MARKER = "hpsforge-answer:"


def main():
    from hps_server.local import LocalModels

    asked = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    models = LocalModels(Path(os.environ.get("HPS_SERVER_ROOT", "/opt/hps/server")))
    try:
        for item in asked:
            print(MARKER + json.dumps(models.send(item["model"], item["request"])), flush=True)
    finally:
        models.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
