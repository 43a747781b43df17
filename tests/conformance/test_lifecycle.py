"""Check 5: the server's lifecycle. Ready means every model of the pipeline is loaded; a `docker
restart` keeps the pipeline's state (the face index); SIGTERM stops the server cleanly (exit 0)
well within Docker's 30 s stop grace.

Each check restarts or stops its server, so each starts its own container of the pipeline's image
instead of sharing the session's; with --hps-url (a server the suite does not own) they skip."""

from __future__ import annotations

import json
import time

import conftest
import pytest
import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings

STOP_LIMIT_S = 30  # Docker's grace before SIGKILL on `docker stop` with -t 30 / Kubernetes' default
# The case re-run after a restart when the pipeline keeps state: it reads what earlier cases saved.
STATEFUL_CASE = {"face_recognition": "obama2_still_obama_via_obama3"}


@pytest.fixture
def own_server(request, pipeline):
    """A fresh container of the pipeline's image, for this check alone; removed afterwards."""
    if request.config.getoption("--hps-url"):
        pytest.skip(
            "lifecycle checks restart and stop their server: they need a container the suite "
            "starts, not the running server given with --hps-url"
        )
    endpoint = conftest.start_container(conftest.image_for(request, pipeline), pipeline)
    request.node.user_properties.append(("ready_s", round(endpoint.ready_seconds, 1)))
    try:
        yield endpoint
    finally:
        endpoint.container.stop()


def _model_folders(pipeline: str) -> list[str]:
    repo = settings().pipelines_dir / pipeline / "server" / "model_repo"
    return sorted(path.name for path in repo.iterdir() if path.is_dir())


def _admin(endpoint) -> dict:
    return {"hps-admin-key": endpoint.admin_key}


def _send(endpoint):
    def send(model: str, request: dict) -> dict:
        status, reply = wire.infer(endpoint.http, model, request)
        if status != 200:
            return {"errorCode": None, "errorMsg": f"HTTP {status}: {json.dumps(reply)[:300]}"}
        return reply

    return send


def _run_golden_cases(pipeline: str, endpoint, fixtures_dir) -> tuple[list[str], dict]:
    """Every golden case in order over raw HTTP: (failures, the variables the cases saved)."""
    run = goldens.run(settings().pipelines_dir / pipeline, _send(endpoint), fixtures_dir)
    return run.failures, run.saved


def test_ready_means_every_model_loaded(pipeline, own_server):
    # start_container returned as soon as /v2/health/ready first answered 200: look right away.
    status, body = wire.call(own_server.http, "POST", "/v2/repository/index", b"{}", headers=_admin(own_server))
    assert status == 200, f"repository index (with the admin key): HTTP {status} {body[:300]!r}"
    states = {entry["name"]: entry.get("state", "") for entry in json.loads(body)}
    not_ready = {
        model: states.get(model, "(not listed)") for model in _model_folders(pipeline) if states.get(model) != "READY"
    }
    assert not not_ready, (
        f"{pipeline}: /v2/health/ready answered 200 while these models were not READY: "
        f"{not_ready}; the index: {states}\n{own_server.logs()}"
    )
    for model in _model_folders(pipeline):
        status, body = wire.call(own_server.http, "GET", f"/v2/models/{model}/ready")
        assert status == 200, f"{pipeline}: server ready but {model} is not: HTTP {status} {body[:200]!r}"


def test_restart_keeps_state(pipeline, own_server, fixtures_dir, record_property):
    pipeline_dir = settings().pipelines_dir / pipeline
    golden = goldens.load_file(pipeline_dir)
    failures, saved = _run_golden_cases(pipeline, own_server, fixtures_dir)
    assert not failures, f"{pipeline} goldens before the restart:\n  " + "\n  ".join(failures)

    wrapped = own_server.container.get_wrapped_container()
    started_before = wrapped.attrs["State"]["StartedAt"]
    began = time.monotonic()
    wrapped.restart(timeout=30)
    restart_s = time.monotonic() - began
    wrapped.reload()
    assert wrapped.attrs["State"]["StartedAt"] != started_before, "docker restart did not restart the container"
    # The published host ports may change with a restart: read them again.
    container, host = own_server.container, own_server.container.get_container_host_ip()
    own_server.http = f"{host}:{container.get_exposed_port(8000)}"
    own_server.grpc = f"{host}:{container.get_exposed_port(8001)}"
    own_server.metrics = f"{host}:{container.get_exposed_port(8002)}"
    ready_s = conftest.wait_ready(own_server)
    print(f"{pipeline}: docker restart took {restart_s:.1f} s, ready {ready_s:.1f} s later")

    name = STATEFUL_CASE.get(pipeline, golden.conformance.valid_case)
    case = next(case for case in golden.cases if case.name == name)
    request = goldens.resolve(case.request, pipeline_dir / "goldens", fixtures_dir, saved)
    problems = goldens.problems(case, _send(own_server)(case.model, request))
    assert not problems, (
        f"{pipeline}: after docker restart, case {name} (variables saved before the restart: "
        f"{saved}):\n  " + "\n  ".join(problems) + f"\n{own_server.logs()}"
    )


def test_sigterm_stops_cleanly_within_30s(pipeline, own_server):
    wrapped = own_server.container.get_wrapped_container()
    began = time.monotonic()
    wrapped.kill(signal="SIGTERM")
    try:
        exit_code = wrapped.wait(timeout=STOP_LIMIT_S + 30)["StatusCode"]
    except Exception as error:  # the engine API's read timeout: still running
        pytest.fail(
            f"{pipeline}: still running {STOP_LIMIT_S + 30} s after SIGTERM ({error!r}); its log:\n{own_server.logs()}"
        )
    stopped_s = time.monotonic() - began
    print(f"{pipeline}: exited {exit_code} {stopped_s:.1f} s after SIGTERM")
    assert stopped_s <= STOP_LIMIT_S, (
        f"{pipeline}: took {stopped_s:.1f} s to stop after SIGTERM (limit "
        f"{STOP_LIMIT_S} s); its log:\n{own_server.logs()}"
    )
    assert exit_code == 0, f"{pipeline}: exit code {exit_code} after SIGTERM; its log:\n{own_server.logs()}"
