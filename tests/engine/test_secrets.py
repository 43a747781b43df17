"""No layer and no history entry of any image holds the host's CA bundle."""

import shutil
from pathlib import Path

import pytest
from python_on_whales import docker

from hpsforge.images import buildkit
from tests.support import image_audit

LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


def host_secrets() -> dict[str, bytes]:
    """The host CA bundle, and each CA the host added to it (the proxy's): what must not leak."""
    bundle_path = buildkit.host_ca_bundle()
    if bundle_path is None:
        pytest.skip("this host has no CA bundle to leak")
    secrets = {"the host CA bundle": bundle_path.read_bytes()}
    for added in sorted(LOCAL_CA_DIR.rglob("*.crt")):
        for number, pem in enumerate(sorted(image_audit.pem_certificates(added.read_bytes()))):
            secrets[f"host CA {added.name} #{number}"] = pem
    return secrets


@pytest.mark.parametrize("role", ["base", "rc", "runtime-cpu"])
def test_no_image_holds_the_host_ca(shared_images, runtime_cpu, role):
    images = {**shared_images, "runtime-cpu": runtime_cpu}
    leaks = image_audit.scan_image(images[role].reference, host_secrets())
    assert leaks == []


def test_the_scan_finds_a_bundle_that_was_copied_in(shared_images, tmp_path):
    """The audit itself can fail: an image that COPYs the bundle is caught."""
    secrets = host_secrets()
    shutil.copyfile(buildkit.host_ca_bundle(), tmp_path / "bundle.pem")
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY bundle.pem /leaked.pem\n")
    leaky = buildkit.build(
        buildkit.ImageBuild(
            role="leak-test",
            dockerfile=tmp_path / "Dockerfile",
            context=tmp_path,
            reference="hpsforge/leak-test:latest",
            source_date_epoch=0,
            input_sha256="test",
            parents=(("base", shared_images["base"]),),
        ),
    )
    try:
        leaks = image_audit.scan_image(leaky.reference, secrets)
        assert any(leak.where.endswith("/leaked.pem") for leak in leaks)
    finally:
        docker.image.remove(leaky.reference, force=True)
