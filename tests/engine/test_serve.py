"""`nox -s serve`: one command starts a pipeline image and prints where it answers."""

import urllib.request

import pytest
from python_on_whales import docker

from hpsforge.core.errors import HpsforgeError
from hpsforge.ship import serve

PIPELINE = "image_classification"  # the pipeline the serve_slot fixture builds (tests/conftest.py)


def test_serve_starts_the_recorded_image_and_prints_addresses(serve_slot, capsys):
    name, ports = serve_slot
    serve.start(PIPELINE, "cpu", "127.0.0.1", ports)
    printed = capsys.readouterr().out
    assert f"http://127.0.0.1:{ports['http']}" in printed and f"127.0.0.1:{ports['grpc']}" in printed
    assert f"http://127.0.0.1:{ports['metrics']}/metrics" in printed
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5) as response:
        assert b"nv_inference_request_success" in response.read()
    # The state volume (the face index lives there) is writable by the serving user.
    state = docker.container.execute(
        name, ["sh", "-c", 'mkdir -p "$HOME/hps-state" && touch "$HOME/hps-state/probe" && id -u']
    )
    assert state.strip() == "1000"
    with pytest.raises(HpsforgeError, match="exists already"):
        serve.start(PIPELINE, "cpu", "127.0.0.1", ports)
