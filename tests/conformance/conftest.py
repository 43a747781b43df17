"""The conformance suite's servers: each pipeline image started with testcontainers, or an
endpoint that is already running (--hps-url / --hps-grpc-url, one pipeline).

Options (also passed by `nox -s conformance`):
  --hps-pipelines OCR,lexical_analysis   which pipelines (default: all)
  --hps-url HOST:PORT                    check this running server's HTTP endpoint instead
  --hps-grpc-url HOST:PORT               ... and its gRPC endpoint (default: HTTP port + 1)
  --hps-metrics-url HOST:PORT            ... and its metrics endpoint (default: HTTP port + 2)
  --hps-target cpu                       whose images to start (default cpu; gpu-cu12, or gpu-cu118 on
                                         stand-in cuDNN/TensorRT, see tests/support/gpu_standins.py: both
                                         served in CPU fallback)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "sdk" / "client" / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suite's helper module (wire)

from hps_client import ready  # noqa: E402

from hpsforge.core.pipelines import load_pipelines  # noqa: E402
from hpsforge.images import pipeline_images  # noqa: E402
from hpsforge.inputs import model_files  # noqa: E402
from hpsforge.inputs.store import cache_root  # noqa: E402
from hpsforge.prove import conformance  # noqa: E402

READY_TIMEOUT_S = 240
SHM_SIZE = "256m"
# The suite's containers enable model management with this key, so check 6 can use it.
ADMIN_KEY = "conformance-admin-key"


def pytest_addoption(parser):
    group = parser.getgroup("hps", "hpsforge conformance")
    group.addoption("--hps-pipelines", default="", help="comma-separated pipelines (default: all)")
    group.addoption("--hps-url", default="", help="HTTP HOST:PORT of a running server to check")
    group.addoption("--hps-grpc-url", default="", help="gRPC HOST:PORT of that server")
    group.addoption("--hps-metrics-url", default="", help="metrics HOST:PORT of that server")
    group.addoption("--hps-target", default="cpu", help="device target of the images to start")
    group.addoption("--hps-admin-key", default="", help="the running server's HPS_ADMIN_KEY (management check)")
    group.addoption(
        "--hps-image",
        action="append",
        default=[],
        help="PIPELINE=IMAGE: start this image for the pipeline instead of the recorded one",
    )
    group.addoption("--hps-report", default="", help="write each check's outcome as JSON here")


def selected_pipelines(config) -> list[str]:
    known = load_pipelines()
    wanted = [name for name in config.getoption("--hps-pipelines").split(",") if name]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise pytest.UsageError(f"unknown pipeline(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if config.getoption("--hps-url") and len(wanted) != 1:
        raise pytest.UsageError("--hps-url checks one running server: name its pipeline with --hps-pipelines")
    return wanted or list(known)


def pytest_generate_tests(metafunc):
    if "pipeline" in metafunc.fixturenames:
        metafunc.parametrize("pipeline", selected_pipelines(metafunc.config), scope="session")


@dataclass
class Endpoint:
    """Where one pipeline's server answers; `container` is set when the suite started it."""

    pipeline: str
    http: str
    grpc: str
    metrics: str
    container: object | None = None
    admin_key: str | None = None
    ready_seconds: float | None = None  # start to ready, when the suite started it

    def logs(self) -> str:
        if self.container is None:
            return "(server not started by the suite)"
        return container_log(self.container)


def container_log(container) -> str:
    """A container's log: its error lines first (what failed), then its tail."""
    wrapped = container.get_wrapped_container()
    if wrapped is None:
        return "(no container was created)"
    text = wrapped.logs(stdout=True, stderr=True).decode(errors="replace")
    errors = [line for line in text.splitlines() if line.startswith("E") or "failed to load" in line or "rror:" in line]
    return "\n".join(errors[-10:]) + "\n--- last lines ---\n" + text[-3000:]


def _with_port_offset(address: str, offset: int) -> str:
    host, _, port = address.rpartition(":")
    return f"{host}:{int(port) + offset}"


def start_container(
    image: str, pipeline: str, timeout_s: float = READY_TIMEOUT_S, env: dict[str, str] | None = None, **kwargs
) -> Endpoint:
    """Start `image` (with `env` added, e.g. HPS_ENGINE) and wait until Triton says ready; its log
    is in the error if it never is."""
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(image)
        .with_exposed_ports(8000, 8001, 8002)
        .with_env("HPS_ADMIN_KEY", ADMIN_KEY)
        .with_kwargs(shm_size=SHM_SIZE, **kwargs)
    )
    for name, value in (env or {}).items():
        container = container.with_env(name, value)
    try:
        container.start()
    except Exception as error:  # e.g. it exited at once: say why, with its log
        log = container_log(container)
        container.stop()
        pytest.fail(f"{pipeline}: the container did not start ({error}); its log:\n{log}")
    host = container.get_container_host_ip()
    endpoint = Endpoint(
        pipeline,
        f"{host}:{container.get_exposed_port(8000)}",
        f"{host}:{container.get_exposed_port(8001)}",
        f"{host}:{container.get_exposed_port(8002)}",
        container,
        ADMIN_KEY,
    )
    try:
        endpoint.ready_seconds = wait_ready(endpoint, timeout_s)
    except BaseException:  # never ready: its log is in the failure; the container goes
        container.stop()
        raise
    return endpoint


def wait_ready(endpoint: Endpoint, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Seconds until the endpoint is ready (hps_client.ready, the one readiness wait)."""

    def alive() -> bool:
        wrapped = endpoint.container.get_wrapped_container() if endpoint.container else None
        if wrapped is None:
            return True
        wrapped.reload()
        return wrapped.status == "running"

    try:
        return ready.wait_until(lambda: ready.http_ready(endpoint.http), timeout_s, interval=0.5, alive=alive)
    except ready.NotReadyError as error:
        what = (
            "the container exited before it was ready"
            if error.reason == "exited"
            else f"not ready after {timeout_s:.0f} s"
        )
        pytest.fail(f"{endpoint.pipeline}: {what}; its log:\n{endpoint.logs()}")


@pytest.fixture(scope="session")
def pipeline_image_records(request):
    """Every selected pipeline's image for the target, built (or found up to date) as `nox -s images` does."""
    target = request.config.getoption("--hps-target")
    config = request.getfixturevalue("config")
    pipelines = load_pipelines()
    # gpu-cu118: on the stand-in cuDNN/TensorRT (tests/conftest.py); GPU targets serve in CPU fallback here.
    runtimes = {"cpu": "runtime_cpu", "gpu-cu118": "runtime_gpu_cu118", "gpu-cu12": "runtime_gpu_cu12"}
    if target not in runtimes:
        pytest.skip(f"images of the {target} target are not built by the test suite")
    runtime_image = request.getfixturevalue(runtimes[target])
    overridden = {item.split("=", 1)[0] for item in request.config.getoption("--hps-image")}
    return {
        name: pipeline_images.build(config, name, pipelines[name], target, runtime_image)
        for name in selected_pipelines(request.config)
        if name not in overridden
    }


def image_for(request, pipeline: str) -> str:
    """The image the suite starts for `pipeline`: --hps-image, else the one `nox -s images` builds."""
    overrides = dict(item.split("=", 1) for item in request.config.getoption("--hps-image"))
    if pipeline in overrides:
        return overrides[pipeline]
    return request.getfixturevalue("pipeline_image_records")[pipeline].reference


@pytest.fixture(scope="session")
def server(request, pipeline):
    """The pipeline's server: started once per session (or the endpoint given with --hps-url)."""
    options = request.config
    if url := options.getoption("--hps-url"):
        endpoint = Endpoint(
            pipeline,
            url,
            options.getoption("--hps-grpc-url") or _with_port_offset(url, 1),
            options.getoption("--hps-metrics-url") or _with_port_offset(url, 2),
            admin_key=options.getoption("--hps-admin-key") or None,
        )
        wait_ready(endpoint, 10)
        yield endpoint
        return
    endpoint = start_container(image_for(request, pipeline), pipeline)
    yield endpoint
    endpoint.container.stop()


@pytest.fixture(scope="session")
def fixtures_dir(pipeline):
    """The pipeline's locked fixture files (golden inputs), verified and extracted once."""
    declared = load_pipelines()[pipeline].fixtures
    if not declared:
        return None
    folder = cache_root() / "fixtures" / pipeline
    model_files.extract(pipeline, declared, folder)
    return folder


# The report `nox -s conformance` prints: one row per pipeline, one column per check.


def pytest_configure(config):
    config._hps_results = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        params = dict(getattr(getattr(item, "callspec", None), "params", {}))
        pipeline = params.pop("pipeline", "-")
        check = item.originalname.removeprefix("test_")
        if params:
            check += "[" + ",".join(str(value) for value in params.values()) + "]"
        message = ""
        if report.outcome == "failed":
            message = str(
                getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message or report.longrepr
            )[:500]
        elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            message = report.longrepr[2].removeprefix("Skipped: ")
        properties = dict(report.user_properties)
        item.config._hps_results.append(
            conformance.CheckResult(
                pipeline=pipeline,
                check=check,
                outcome=conformance.Outcome(report.outcome),
                seconds=round(report.duration, 2),
                message=message,
                latency_ms=properties.get("latency_ms", {}),
                ready_s=properties.get("ready_s"),
            )
        )


def pytest_sessionfinish(session):
    path = session.config.getoption("--hps-report", default="")
    if path:  # read back by hpsforge.prove.conformance.run
        Path(path).write_bytes(conformance.RESULTS.dump_json(session.config._hps_results, indent=1))
