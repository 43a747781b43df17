"""The naive stack the serving benchmark compares Triton with: Flask behind gunicorn, calling the
same model.py work in each worker process (POST /<model> with the request document as the body,
the envelope as the answer).

    gunicorn --chdir /bench -w 2 -b 0.0.0.0:8000 flask_app:app

Each worker loads every JSON model of the bundle (HPS_SERVER_ROOT) when it starts. A Paddle
predictor must not run two requests at once, so with --threads each model takes one request at a
time (a lock per model).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from flask import Flask, Response, request
from hps_server.local import LocalModels

app = Flask(__name__)
models = LocalModels(Path(os.environ.get("HPS_SERVER_ROOT", "/opt/hps/server")))
locks = {name: threading.Lock() for name in models.models}


@app.get("/health")
def health() -> Response:
    return Response(b"ok", mimetype="text/plain")


@app.post("/<model>")
def infer(model: str) -> Response:
    if model not in models.models:
        return Response(b'{"errorCode":404,"errorMsg":"no such model"}', status=404, mimetype="application/json")
    with locks[model]:
        answer = models.call(model, request.get_data())
    return Response(answer, mimetype="application/json")
