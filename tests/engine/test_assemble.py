"""assemble: byte-identical bundles, and a bundle's server.sh serving real requests on the runtime."""

import json
import tarfile
import time
import urllib.request

from python_on_whales import docker

from hpsforge.bundle import assemble, goldens
from hpsforge.core.pipelines import load_pipelines
from hpsforge.core.settings import settings

PIPELINE = "image_classification"  # the smallest bundle; every pipeline's server is checked through its image


def _assemble(output_dir, config, **options):
    return assemble.assemble(
        PIPELINE, load_pipelines()[PIPELINE], config.base.source_date_epoch, output_dir=output_dir, **options
    )


def test_two_runs_write_byte_identical_archives(tmp_path, config):
    _assemble(tmp_path / "first", config)
    _assemble(tmp_path / "second", config)
    first = (tmp_path / "first" / f"{PIPELINE}_sdk.tar.gz").read_bytes()
    assert first == (tmp_path / "second" / f"{PIPELINE}_sdk.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "first" / f"{PIPELINE}_sdk.tar.gz") as bundle:
        names = bundle.getnames()
    for expected in (
        "server/server.sh",
        "server/pipeline.toml",
        "server/lib/hps_server/models.py",
        "server/model_repo/image-classification/configs/gpu.pbtxt",
        "server/models/textline_orientation/inference.pdiparams",
        "client/client.py",
        "client/requirements.txt",
        "client/hps_client-0.1.0-py3-none-any.whl",
    ):
        assert f"{PIPELINE}_sdk/{expected}" in names


def test_client_only_bundle_has_no_server(tmp_path, config):
    folder = _assemble(tmp_path, config, server=False)
    assert not (folder / "server").exists() and (folder / "client" / "client.py").exists()


def _infer(port: int, model: str, request: dict) -> dict:
    body = {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 1], "data": [json.dumps(request)]}]}
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=60) as response:
        return json.loads(json.loads(response.read())["outputs"][0]["data"][0])


def test_unpacked_bundle_serves_on_the_runtime_image(tmp_path, config, runtime_cpu):
    _assemble(tmp_path / "out", config)
    with tarfile.open(tmp_path / "out" / f"{PIPELINE}_sdk.tar.gz") as bundle:
        bundle.extractall(tmp_path / "unpacked", filter="data")
    server_dir = tmp_path / "unpacked" / f"{PIPELINE}_sdk" / "server"
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)
    container = docker.run(
        runtime_cpu.reference,
        detach=True,
        remove=False,
        publish=[("127.0.0.1:0", 8000)],
        volumes=[(str(server_dir), "/srv", "ro")],
        entrypoint="/srv/server.sh",
        shm_size="256m",
    )
    try:
        port = int(docker.container.inspect(container).network_settings.ports["8000/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, docker.container.logs(container)[-3000:]
                time.sleep(0.5)
        pipeline_dir = settings().pipelines_dir / PIPELINE
        for case in goldens.load(pipeline_dir):
            request = goldens.resolve(case.request, pipeline_dir / "goldens", None, {})
            assert goldens.problems(case, _infer(port, case.model, request)) == [], case.name
        assert "serving /srv/model_repo on cpu" in docker.container.logs(container)
    finally:
        docker.container.remove(container, force=True)
