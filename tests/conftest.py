"""Shared fixtures, and the markers that follow the folders:

tests/unit         neither engine nor network (a unit test that reaches the network fails)
tests/engine       the real Docker engine and BuildKit (`engine`)
tests/conformance  pipeline images served by the engine (`engine`)
tests/network      the live Debian mirror or PyPI (`network` and `engine`): they fail naming the
                   re-lock command when upstream moved
tests/site         the documentation site, built by `nox -s docs` (`site`; no engine): `tests` runs
                   it, `unit` leaves it out
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# No test writes a tracked file: builds record their digests in a session copy of the record,
# never in lock/images.lock.json (hpsforge reads HPSFORGE_* at every call: core/settings.py).
_RECORD = Path(tempfile.mkdtemp(prefix="hpsforge-test-record-")) / "images.lock.json"
shutil.copyfile(PROJECT_ROOT / "lock" / "images.lock.json", _RECORD)
os.environ["HPSFORGE_IMAGES_RECORD"] = str(_RECORD)
os.environ["HPSFORGE_COMMITTED_RECORD"] = str(PROJECT_ROOT / "lock" / "images.lock.json")
# testcontainers' reaper image cannot be pulled here (no registry); containers are stopped by
# the fixtures themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import pytest  # noqa: E402

from hpsforge.core.config import load_config  # noqa: E402
from hpsforge.core.project import Project  # noqa: E402
from hpsforge.images import converter, engine, graph  # noqa: E402
from hpsforge.locks import images_lock  # noqa: E402

# Test-support modules import as tests.support.* (appended: the project's own build/ must not
# shadow PyPA's `build`).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))

from tests.support.fixtures import signing_key  # noqa: E402,F401  (a fixture: imported to register it)

FOLDER_MARKERS = {
    "unit": (),
    "engine": ("engine",),
    "conformance": ("engine",),
    "network": ("network", "engine"),
    "site": ("site",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(item.fspath).relative_to(PROJECT_ROOT / "tests").parts
        folder = parts[0] if len(parts) > 1 else None
        if folder == "unit":
            marked = {mark.name for mark in item.iter_markers()} & {"engine", "network", "site"}
            if marked:
                raise pytest.UsageError(
                    f"{item.nodeid}: tests/unit needs neither engine nor network nor the site build, "
                    f"but it is marked {', '.join(sorted(marked))}: move it"
                )
        for name in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(name)


def pytest_sessionstart(session):
    from hpsforge.inputs.store import cache_root
    from tests.support.disk import DiskWatch

    watch = session.config.stash[_DISK] = DiskWatch(
        {
            "the store": cache_root(),
            "the engine": Path("/var/lib/docker"),
            "temporary files": Path(tempfile.gettempdir()),
        }
    ).start()
    if (warning := watch.warning()) and (terminal := session.config.pluginmanager.get_plugin("terminalreporter")):
        terminal.write_line(f"disk: {warning}", yellow=True, bold=True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_RECORD.parent, ignore_errors=True)
    if watch := session.config.stash.get(_DISK, None):
        watch.stop()


def pytest_terminal_summary(terminalreporter, config):
    if watch := config.stash.get(_DISK, None):
        terminalreporter.section("disk")
        for line in watch.lines():
            terminalreporter.write_line(line)


_DISK = pytest.StashKey()


@pytest.fixture(scope="session")
def config():
    return load_config()


# Engine-backed fixtures: the real Docker engine and the images built as `nox -s images` does.


@pytest.fixture(scope="session")
def engine_status(config):
    """The engine, brought up by the same code path as `nox -s engine`."""
    return engine.ensure(config.engine)


@pytest.fixture(scope="session")
def registry_tool(config):
    """Debian's docker-registry, installed from the engine's locked closure (engine.tools) when absent."""
    engine.install_tool(config.engine, "docker-registry")


@pytest.fixture(scope="session")
def diffoscope_tool(config):
    """Debian's diffoscope-minimal (repro's file-level differences), from the locked closure."""
    engine.install_tool(config.engine, "diffoscope-minimal")


@pytest.fixture(scope="session")
def project():
    return Project.load()


@pytest.fixture(scope="session")
def cpu_graph(project):
    """The project's build graph for the cpu target, as `nox -s images -- cpu` walks it."""
    return graph.BuildGraph.of(project, ["cpu"])


@pytest.fixture(scope="session")
def shared_images(config, engine_status):
    """base and rc, built (or found warm in the BuildKit cache) as `nox -s images` does."""
    return graph.build_shared_images(config)


@pytest.fixture(scope="session")
def converter_image(config, shared_images):
    """The converter image (base + lock/requirements/convert.txt), as `nox -s images` builds it."""
    return converter.build(config, shared_images["base"], shared_images["rc"])


@pytest.fixture(scope="session")
def runtime_cpu(cpu_graph, shared_images):
    """The cpu runtime image, built (or found up to date) as `nox -s images -- cpu` does."""
    return cpu_graph.nodes["runtime-cpu"].build(shared_images, graph.BuildOptions())


SERVED_PIPELINE = "image_classification"  # the smallest pipeline image


@pytest.fixture
def serve_slot(cpu_images):
    """(container name, free host ports) for `serve.start(SERVED_PIPELINE, "cpu", ...)`: the image is
    built and recorded, no earlier container is in the way, and the container and its state volume
    go afterwards."""
    import socket

    from python_on_whales import docker

    from hpsforge.ship import serve

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    name = serve.container_name(SERVED_PIPELINE, "cpu")
    if docker.container.exists(name):
        docker.container.remove(name, force=True)
    yield name, {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    docker.container.remove(name, force=True, volumes=True)
    if docker.volume.exists(f"{name}-state"):
        docker.volume.remove(f"{name}-state")


# The gpu-cu12 target, built for real: every CUDA library from hash-locked PyPI wheels, no stand-in.


@pytest.fixture(scope="session")
def runtime_gpu_cu12(config, shared_images):
    """The gpu-cu12 runtime, built (or found up to date) as `nox -s images -- gpu-cu12` does."""
    from hpsforge.images import runtime

    return runtime.build(config, "gpu-cu12", shared_images["base"], shared_images["rc"])


@pytest.fixture(scope="session")
def gpu_cu12_images(config, runtime_gpu_cu12):
    """Every gpu-cu12 pipeline image; role -> record (the runtime included)."""
    from hpsforge.core.pipelines import load_pipelines
    from hpsforge.images import pipeline_images

    built = {"runtime-gpu-cu12": runtime_gpu_cu12}
    for name, pipeline in load_pipelines().items():
        role = pipeline_images.role(name, "gpu-cu12")
        built[role] = pipeline_images.build(config, name, pipeline, "gpu-cu12", runtime_gpu_cu12)
    return built


# The gpu-cu118 target, built with STAND-INS for NVIDIA's cuDNN and TensorRT tarballs (which cannot be
# downloaded here): tests/support/gpu_standins.py. Real cu11 wheels, real Paddle 2.6.2, real
# Triton; the images are tagged -standin and never recorded.


@pytest.fixture(scope="session")
def gpu_standins(config, tmp_path_factory):
    """Stand-in archives and their manifest; HPSFORGE_BLOB_MANIFEST in the environment wins (a
    parent test run passes its own stand-ins down to the conformance suite it starts)."""
    from tests.support import gpu_standins

    if os.environ.get("HPSFORGE_BLOB_MANIFEST"):
        return gpu_standins.Standins(Path(os.environ["HPSFORGE_BLOB_MANIFEST"]), Path(os.environ["HPSFORGE_BLOBS_DIR"]))
    return gpu_standins.make(tmp_path_factory.mktemp("gpu-standins"), config)


@pytest.fixture(scope="session")
def runtime_gpu_cu118(config, shared_images, gpu_standins):
    """The gpu-cu118 runtime on the stand-ins, built (or found up to date) as `nox -s images -- gpu-cu118` does."""
    from hpsforge.images import runtime

    with gpu_standins.active():
        return runtime.build(config, "gpu-cu118", shared_images["base"], shared_images["rc"])


@pytest.fixture(scope="session")
def gpu_cu118_images(config, runtime_gpu_cu118):
    """Every gpu-cu118 pipeline image on the stand-in runtime; role -> record (the runtime included)."""
    from hpsforge.core.pipelines import load_pipelines
    from hpsforge.images import pipeline_images

    built = {"runtime-gpu-cu118": runtime_gpu_cu118}
    for name, pipeline in load_pipelines().items():
        role = pipeline_images.role(name, "gpu-cu118")
        built[role] = pipeline_images.build(config, name, pipeline, "gpu-cu118", runtime_gpu_cu118)
    return built


@pytest.fixture(scope="session")
def cpu_images(cpu_graph, engine_status):
    """Every cpu image (base, rc, runtime, one per pipeline), built or found up to date as
    `nox -s images -- cpu` does, and recorded in the session's record; role -> record."""
    built = cpu_graph.build()
    tools = {node.role for node in cpu_graph if not node.bit_for_bit}  # not recorded (as `nox -s images`)
    images_lock.ImagesLock.read().with_records({role: r for role, r in built.items() if role not in tools}).write()
    return built
