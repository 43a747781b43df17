"""perf_analyzer installed from its lock (and libb64 from the engine lock) and run for real against
a pipeline image, from inside its network namespace, as `bench --serving --perf-analyzer` does."""

from __future__ import annotations

import base64
import json
import urllib.request

from python_on_whales import docker

from hpsforge.bench.serving import perf_analyzer
from hpsforge.bundle.client_sdk import ready
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.images import pipeline_images

PIPELINE = "image_classification"  # the smallest image and the quickest answers


def test_perf_analyzer_measures_a_pipeline_image(config, cpu_images, tmp_path):
    binary = perf_analyzer.install(config.engine)
    assert perf_analyzer.install(config.engine) == binary  # installed once per lock
    image = cpu_images[pipeline_images.role(PIPELINE, "cpu")].reference
    line = (PROJECT_ROOT / "pipelines" / "OCR" / "goldens" / "hello_2026.png").read_bytes()
    document = tmp_path / "request.json"
    document.write_text(json.dumps({"image": base64.b64encode(line).decode()}))
    name = f"hps-test-perf-analyzer-{tmp_path.name}"
    docker.run(image, detach=True, name=name, shm_size="256m", publish=[("127.0.0.1:", 8000)])
    try:
        http = f"127.0.0.1:{docker.container.inspect(name).network_settings.ports['8000/tcp'][0]['HostPort']}"
        ready.wait_until(lambda: ready.http_ready(http, ready.READY_PATH), 300, what=PIPELINE)
        # One answer first: the first request of a fresh container is far slower than the rest.
        body = {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1], "data": [document.read_text()]}]}
        request = urllib.request.Request(
            f"http://{http}/v2/models/image-classification/infer", json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            envelope = json.loads(json.loads(answer.read())["outputs"][0]["data"][0])
        assert envelope["errorCode"] == 0, envelope  # the document perf_analyzer sends is a valid request
        # Windows of a second, any spread accepted: only that it measures is checked here.
        point = perf_analyzer.measure(binary, name, "image-classification", document, 2, 1.0, stability_percent=1000)
    finally:
        docker.container.remove(name, force=True)
    assert point.concurrency == 2 and point.qps > 0 and 0 < point.p50_ms <= point.p99_ms
