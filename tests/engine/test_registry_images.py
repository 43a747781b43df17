"""Beyond one machine: every cpu image pushed to a real registry (Debian's docker-registry on
127.0.0.1) and recorded by digest, read back with skopeo and compared; a pipeline served by that
digest; a rebuild with an empty local BuildKit cache reading the registry cache gives the same
digests."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from python_on_whales import docker

from hpsforge.core.errors import DigestMismatchError, InputUnavailableError
from hpsforge.locks.images_lock import ImagesLock
from hpsforge.ship import registry
from tests.support.registry import TEST_HTPASSWD, local_registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = Path(os.environ["HPSFORGE_COMMITTED_RECORD"])
PUSHED_ROLES = {
    "runtime-cpu",
    "pipeline-ocr-cpu",
    "pipeline-face-recognition-cpu",
    "pipeline-image-classification-cpu",
    "pipeline-lexical-analysis-cpu",
}


def _noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def pushed(cpu_images, registry_tool, tmp_path_factory):
    """`images -- cpu --push` to a local registry: (registry, the record it wrote)."""
    root = tmp_path_factory.mktemp("pushed")
    record = root / "images.lock.json"
    shutil.copyfile(COMMITTED, record)
    with local_registry(root / "registry") as served:
        started = time.monotonic()
        result = _noxw(
            "-s", "images", "--", "cpu", "--push", f"{served.host}/hps", env={"HPSFORGE_IMAGES_RECORD": str(record)}
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        print(f"push of every cpu runtime and pipeline image: {time.monotonic() - started:.0f} s")
        yield served, ImagesLock.read(record)


def test_every_image_is_pushed_and_recorded_by_the_digest_the_registry_serves(pushed, engine_status, tmp_path):
    served, record = pushed
    images = record.images
    assert {role for role, image in images.items() if image.pushed} == PUSHED_ROLES
    del engine_status  # requested for the engine it brings up: skopeo is one of engine.tools
    from hpsforge.core.config import load_config
    from hpsforge.images import engine

    engine.install_tool(load_config().engine, "skopeo")
    for role in sorted(PUSHED_ROLES):
        image = images[role]
        assert image.pushed == f"{served.host}/hps/{image.reference.split('/', 1)[1].split(':')[0]}@{image.digest}"
        layout = tmp_path / role
        started = time.monotonic()
        copied = subprocess.run(
            [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                "--preserve-digests",
                f"docker://{image.pushed}",
                f"oci:{layout}",
            ],
            capture_output=True,
            text=True,
        )
        assert copied.returncode == 0, copied.stderr
        index = json.loads((layout / "index.json").read_text())
        assert [m["digest"] for m in index["manifests"]] == [image.digest], role
        print(f"{role}: read back into an OCI layout in {time.monotonic() - started:.1f} s")
    # Every other record is untouched; the digests are the committed ones.
    assert {role: image.digest for role, image in images.items()} == {
        role: image.digest for role, image in ImagesLock.read(COMMITTED).images.items()
    }


def test_serve_runs_exactly_the_pushed_digest(pushed, serve_slot):
    served, record = pushed
    name, ports = serve_slot
    reference = record.images["pipeline-image-classification-cpu"].pushed
    local = f"{reference.split('@')[0]}:{record.images['pipeline-image-classification-cpu'].reference.split(':')[-1]}"
    docker.image.remove(local, force=True)  # the pushed name is pulled afresh
    result = _noxw(
        "-s",
        "serve",
        "--",
        "image_classification",
        "--image",
        reference,
        "--http-port",
        str(ports["http"]),
        "--grpc-port",
        str(ports["grpc"]),
        "--metrics-port",
        str(ports["metrics"]),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert docker.container.inspect(name).image == reference.split("@")[1]
    assert f"starting {reference}" in result.stdout and "ready in" in result.stdout


def test_a_registry_answering_another_digest_is_refused_and_the_build_kept(pushed, cpu_images, monkeypatch):
    served, _ = pushed
    image = cpu_images["pipeline-lexical-analysis-cpu"]
    monkeypatch.setattr(registry.oci_archive, "manifest_digest", lambda reference: "sha256:" + "0" * 64)
    with pytest.raises(DigestMismatchError) as refused:
        registry.push(image, f"{served.host}/hps")
    message = str(refused.value)
    assert image.reference in message and image.digest in message and "sha256:" + "0" * 64 in message
    assert "the local build is kept" in message
    assert docker.image.inspect(image.reference).id == image.digest


def test_a_registry_that_is_down_names_the_image_and_the_reference(cpu_images, tmp_path):
    image = cpu_images["pipeline-image-classification-cpu"]
    with local_registry(tmp_path / "gone") as gone:
        host = gone.host
    with pytest.raises(InputUnavailableError) as refused:
        registry.push(image, f"{host}/hps")
    message = str(refused.value)
    assert f"push of {image.reference} to {host}/hps/image-classification-cpu" in message
    assert f"the image is built and recorded locally ({image.digest})" in message


def test_a_rebuild_with_an_empty_buildkit_cache_reads_the_registry_cache_to_the_same_digests(pushed, tmp_path):
    served, _ = pushed
    cache = f"{served.host}/hps/buildcache"
    record = tmp_path / "images.lock.json"
    shutil.copyfile(COMMITTED, record)
    env = {"HPSFORGE_IMAGES_RECORD": str(record)}
    wrote = _noxw("-s", "images", "--", "cpu", "--rebuild", "--cache-to", cache, env=env)
    assert wrote.returncode == 0, wrote.stdout[-3000:] + wrote.stderr[-3000:]
    subprocess.run(["docker", "builder", "prune", "--all", "--force"], check=True, capture_output=True)
    started = time.monotonic()
    read = _noxw("-s", "images", "--", "cpu", "--rebuild", "--cache-from", cache, env=env)
    assert read.returncode == 0, read.stdout[-3000:] + read.stderr[-3000:]
    print(
        f"rebuild of every cpu image from the registry cache, local BuildKit cache empty: "
        f"{time.monotonic() - started:.0f} s"
    )
    assert "importing cache manifest from" in read.stdout
    assert {role: image.digest for role, image in ImagesLock.read(record).images.items()} == {
        role: image.digest for role, image in ImagesLock.read(COMMITTED).images.items()
    }


def test_a_registry_that_refuses_the_push_is_named_and_the_build_kept(cpu_images, registry_tool, tmp_path):
    image = cpu_images["pipeline-image-classification-cpu"]
    with (
        local_registry(tmp_path / "locked", htpasswd=TEST_HTPASSWD) as locked,
        pytest.raises(InputUnavailableError) as refused,
    ):
        registry.push(image, f"{locked.host}/hps")
    message = str(refused.value)
    assert f"push of {image.reference} to {locked.host}/hps/image-classification-cpu" in message
    assert "docker login" in message and docker.image.inspect(image.reference).id == image.digest
