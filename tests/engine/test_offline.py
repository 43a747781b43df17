"""No network at all: `unshare -n` gives the command a network namespace of its own with nothing
in it (the Docker socket is a file, so the engine still answers). Nothing may ask an index about
what a lock already pins: a warm store builds every cpu image with the recorded digests, and an
input archive imported into an empty store rebuilds them from nothing, the same."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hpsforge.locks.images_lock import ImagesLock

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = Path(os.environ["HPSFORGE_COMMITTED_RECORD"])


def _offline(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "-n", str(PROJECT_ROOT / "noxw"), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def _noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _containers_created(since: float) -> list[str]:
    """Containers of the images hpsforge runs its tools in (base, rc) created since `since`: a
    container reaches the network from the daemon's namespace, so an honest offline build starts
    none. (Other images' containers are someone else's: the engine is shared.)"""
    events = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.0f}",
            "--until",
            f"{time.time():.0f}",
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.Attributes.image}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [image for image in events.stdout.split() if image.startswith(("hpsforge/base:", "hpsforge/rc:"))]


def _digests(record: Path) -> dict[str, str]:
    return {role: image.digest for role, image in ImagesLock.read(record).images.items()}


def test_the_namespace_really_has_no_network():
    address = socket.gethostbyname("deb.debian.org")  # resolved here: the namespace has no DNS either
    probe = subprocess.run(
        ["unshare", "-n", "python3", "-c", f"import socket; socket.create_connection(({address!r}, 80), timeout=5)"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "Network is unreachable" in probe.stderr


def test_a_warm_images_run_needs_no_network(cpu_images, tmp_path):
    record = tmp_path / "images.lock.json"
    shutil.copyfile(COMMITTED, record)
    started = time.time()
    result = _offline("-s", "images", "--", "cpu", env={"HPSFORGE_IMAGES_RECORD": str(record)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "nothing downloaded" in result.stdout
    assert _containers_created(started) == []
    assert _digests(record) == _digests(COMMITTED)


@pytest.mark.parametrize(
    "session",
    [
        ["lock-check"],
        ["verify", "--", "cpu"],
        ["fetch", "--", "cpu"],
        ["sbom", "--", "cpu"],
        ["assemble", "--", "image_classification"],
    ],
    ids=lambda session: session[0],
)
def test_every_checking_session_works_with_no_network(cpu_images, session):
    result = _offline("-s", *session, env={})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def travelled_archive(cpu_images, registry_tool, tmp_path_factory):
    """The cpu target's input archive exported here, pushed to a real registry and pulled back as a
    build farm would: (the pulled folder, the timings). Each copy goes as soon as the next step has
    it (the registry's, the export's, the scratch store's): a CI machine's disk is not ours to fill."""
    from tests.support.registry import local_registry

    root = tmp_path_factory.mktemp("travelled-archive")
    archive, pulled, scratch_store = root / "archive", root / "pulled", root / "scratch-store"
    timings = {}
    with local_registry(root / "registry") as registry:
        reference = registry.reference("hpsforge/inputs", "test")
        started = time.monotonic()
        exported = _noxw("-s", "archive", "--", "export", str(archive), "--target", "cpu", "--push", reference)
        assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
        timings["export + push"] = time.monotonic() - started
        print(next(line for line in exported.stdout.splitlines() if "wrote the input archive" in line))
        exported_files = sorted(p.name for p in (archive / "files").iterdir())
        index = json.loads((archive / "index.json").read_text())
        shutil.rmtree(archive)
        started = time.monotonic()
        fetched = _noxw(
            "-s",
            "archive",
            "--",
            "import",
            "--pull",
            reference,
            str(pulled),
            env={"HPSFORGE_CACHE": str(scratch_store)},
        )
        assert fetched.returncode == 0, fetched.stdout[-3000:] + fetched.stderr[-3000:]
        timings["pull + import"] = time.monotonic() - started
    shutil.rmtree(root / "registry")
    shutil.rmtree(scratch_store)
    assert sorted(p.name for p in (pulled / "files").iterdir()) == exported_files
    for lock in ("lock/requirements/gpu-cu118.txt", "lock/requirements/gpu-cu12.txt"):
        gpu = [entry["name"] for entry in index["entries"] if lock in entry["locks"]]
        assert gpu == [], f"--target cpu walked {lock}: {gpu[:5]}"
    yield pulled, timings
    shutil.rmtree(root)


def test_the_whole_graph_rebuilds_from_an_archive_with_no_network_to_the_recorded_digests(travelled_archive):
    """The whole proof, and CI's reproducibility run: `repro -- cpu --from-archive` under no network
    rebuilds every cpu image from nothing (fresh rootfs, no BuildKit cache, an empty store seeded
    only from the pulled archive); each digest equals the first build's and lock/images.lock.json's.
    The reports stay in output/repro/ for CI to keep."""
    from hpsforge.prove import repro

    pulled, timings = travelled_archive
    started = time.time()
    result = _offline(
        "-s", "repro", "--", "cpu", "--from-archive", str(pulled), env={"HPSFORGE_IMAGES_RECORD": str(COMMITTED)}
    )
    timings["whole-graph repro of cpu from the archive"] = time.time() - started
    print(result.stdout[-2500:])
    print("; ".join(f"{label}: {seconds:.0f} s" for label, seconds in timings.items()))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert _containers_created(started) == []
    report = repro.read_report(repro.default_report_dir() / "report.json")
    assert report.from_archive and report.targets == ["cpu"]
    # The converter is a tool, not recorded: it passes by its outputs (every converted file as locked).
    tools = {image.role: (image.verdict, image.reason) for image in report.images if image.reason == repro.TOOL_IMAGE}
    assert tools == {"converter": ("reproducible", repro.TOOL_IMAGE)}
    images = [image for image in report.images if image.role not in tools]
    # The cpu graph's records (the record holds the gpu-cu12 images too, which the archive leaves out).
    cpu = {
        role: digest for role, digest in _digests(COMMITTED).items() if role in ("base", "rc") or role.endswith("-cpu")
    }
    assert {image.role: image.verdict for image in images} == dict.fromkeys(cpu, "reproducible")
    assert {image.role: image.rebuilt for image in images} == cpu


def test_noxw_sets_up_the_host_environment_from_the_archive_with_no_network(travelled_archive, tmp_path):
    """A bare host with no network: ./noxw installs its locked environment from the archive."""
    pulled, _ = travelled_archive
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for part in ("noxw", "noxfile.py", "pyproject.toml", "build", "lock", "sdk"):
        source = PROJECT_ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, checkout / part)
    listed = subprocess.run(
        ["unshare", "-n", str(checkout / "noxw"), "-l"],
        cwd=checkout,
        capture_output=True,
        text=True,
        env={**os.environ, "HPSFORGE_ARCHIVE": str(pulled)},
    )
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert f"noxw: installing from the input archive {pulled}" in listed.stderr
    assert "images -> " in listed.stdout
