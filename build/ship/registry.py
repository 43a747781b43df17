"""Images beyond one machine: pushed to a registry and recorded by digest, pulled back by digest.

A push is proven: the registry must serve, under the pushed tag, a manifest whose bytes hash to
the digest hpsforge built and recorded; the record then holds the pushed reference by digest
(`registry/prefix/name@sha256:...`), which is what deployments and `serve --image` use.
Credentials are Docker's own (`docker login`); nothing here takes them on a command line.
"""

from __future__ import annotations

import time
from dataclasses import replace

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core.errors import DigestMismatchError, InputUnavailableError, UsageError
from hpsforge.core.reference import ImageReference
from hpsforge.images import gpu
from hpsforge.locks.images_lock import ImageRecord
from hpsforge.ship import oci_archive

PREFIX_USAGE = "REGISTRY[:PORT][/PATH], e.g. 127.0.0.1:5000/hps"


def check_prefix(prefix: str) -> str:
    """REGISTRY[:PORT][/PATH]: checked as the start of the references pushed under it."""
    prefix = prefix.rstrip("/")
    try:
        probe = ImageReference.parse(f"{prefix}/image")
    except UsageError as error:
        raise UsageError(f"--push {prefix!r} is not {PREFIX_USAGE}: {error.message}") from None
    if probe.registry is None:
        raise UsageError(
            f"--push {prefix!r} names no registry host", hint=f"write the registry's address first ({PREFIX_USAGE})"
        )
    return prefix


def pushed_name(record: ImageRecord, prefix: str) -> ImageReference:
    """hpsforge/ocr-cpu:0123abcd under 127.0.0.1:5000/hps -> 127.0.0.1:5000/hps/ocr-cpu:0123abcd."""
    local = ImageReference.parse(record.reference)
    if local.tag is None:
        raise UsageError(f"{record.reference} has no tag to push it under")
    return ImageReference.parse(f"{prefix}/{local.repository.rsplit('/', 1)[-1]}:{local.tag}")


def pushed_by_digest(record: ImageRecord, prefix: str) -> str:
    """Where `push` puts `record` under `prefix`, by its digest: 127.0.0.1:5000/hps/ocr-cpu@sha256:..."""
    return str(replace(pushed_name(record, prefix), tag=None, digest=record.digest))


def push(record: ImageRecord, prefix: str) -> ImageRecord:
    """Push one built image under `prefix`; prove the registry holds exactly the recorded digest."""
    if gpu.is_standin_reference(record.reference):
        raise UsageError(
            f"{record.reference} carries stand-in cuDNN/TensorRT libraries (a test build): "
            "it is never pushed like a release",
            hint="put NVIDIA's tarballs in vendor_blobs/files and unset HPSFORGE_BLOB_MANIFEST",
        )
    pushed_as = pushed_name(record, prefix)
    target = str(pushed_as)
    started = time.monotonic()
    try:
        docker.image.tag(record.reference, target)
        docker.image.push(target, quiet=True)
    except DockerException as error:
        raise InputUnavailableError(
            f"push of {record.reference} to {target} failed: {(error.stderr or '').strip()[-600:]}",
            hint=f"the image is built and recorded locally ({record.digest}); check the registry address and "
            "credentials (`docker login`), then push again",
        ) from None
    answered = oci_archive.manifest_digest(target)
    if answered != record.digest:
        raise DigestMismatchError(
            f"{target}: the registry serves {answered}, not the digest built for {record.reference} ({record.digest})",
            hint="the local build is kept; the registry (or something between) rewrote the manifest: "
            "push to a registry that stores manifests unchanged",
        )
    pushed = str(replace(pushed_as, tag=None, digest=record.digest))
    print(f"hpsforge: pushed {pushed} in {time.monotonic() - started:.1f} s", flush=True)
    return record.model_copy(update={"pushed": pushed})


def pull(reference: str) -> str:
    """Pull exactly `reference` (name@sha256:...) into the engine; return it once the engine holds
    that very manifest."""
    digest = ImageReference.parse(reference).digest
    if digest is None:
        raise UsageError(
            f"{reference!r} is not a reference by digest (NAME@sha256:<64 hex>)",
            hint="take it from lock/images.lock.json (`pushed`) or from the push's output",
        )
    try:
        docker.image.pull(reference, quiet=True)
        held = docker.image.inspect(reference).id
    except DockerException as error:
        raise InputUnavailableError(
            f"cannot pull {reference}: {(error.stderr or '').strip()[-600:]}",
            hint="check the registry address and credentials (`docker login`)",
        ) from None
    if held != digest:
        raise DigestMismatchError(f"{reference}: the engine holds {held} after the pull, not {digest}")
    return reference
