"""Images beyond one machine: pushed to a registry and recorded by digest, pulled back by digest.

A push is proven: the registry must serve, under the pushed tag, a manifest whose bytes hash to
the digest hpsforge built and recorded; the record then holds the pushed reference by digest
(`registry/prefix/name@sha256:...`), which is what deployments and `serve --image` use.
Credentials are Docker's own (`docker login`); nothing here takes them on a command line.
"""

from __future__ import annotations

import re
import time

from hpsforge.core.errors import DigestMismatchError, InputUnavailableError, UsageError
from hpsforge.images import gpu
from hpsforge.locks.images_lock import ImageRecord
from hpsforge.ship import oci_archive
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

DIGEST_REFERENCE = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


def check_prefix(prefix: str) -> str:
    """REGISTRY[:PORT]/PREFIX, validated the way an image reference is."""
    prefix = prefix.rstrip("/")
    oci_archive.parse_reference(f"{prefix}/check:tag", push=True)  # names the registry host, lower case
    return prefix


def pushed_name(record: ImageRecord, prefix: str) -> str:
    """hpsforge/ocr-cpu:0123abcd under 127.0.0.1:5000/hps -> 127.0.0.1:5000/hps/ocr-cpu:0123abcd."""
    repository, _, tag = record.reference.rpartition(":")
    return f"{prefix}/{repository.rsplit('/', 1)[-1]}:{tag}"


def push(record: ImageRecord, prefix: str) -> ImageRecord:
    """Push one built image under `prefix`; prove the registry holds exactly the recorded digest."""
    if gpu.is_standin_reference(record.reference):
        raise UsageError(f"{record.reference} carries stand-in cuDNN/TensorRT libraries (a test build): "
                         "it is never pushed like a release",
                         hint="put NVIDIA's tarballs in vendor_blobs/files and unset HPSFORGE_BLOB_MANIFEST")
    target = pushed_name(record, prefix)
    started = time.monotonic()
    try:
        docker.image.tag(record.reference, target)
        docker.image.push(target, quiet=True)
    except DockerException as error:
        raise InputUnavailableError(
            f"push of {record.reference} to {target} failed: {(error.stderr or '').strip()[-600:]}",
            hint=f"the image is built and recorded locally ({record.digest}); check the registry address and "
                 "credentials (`docker login`), then push again") from None
    answered = oci_archive.manifest_digest(target)
    if answered != record.digest:
        raise DigestMismatchError(
            f"{target}: the registry serves {answered}, not the digest built for {record.reference} ({record.digest})",
            hint="the local build is kept; the registry (or something between) rewrote the manifest: "
                 "push to a registry that stores manifests unchanged")
    pushed = f"{target.rpartition(':')[0]}@{record.digest}"
    print(f"hpsforge: pushed {pushed} in {time.monotonic() - started:.1f} s", flush=True)
    return record.model_copy(update={"pushed": pushed})


def pull(reference: str) -> str:
    """Pull exactly `reference` (name@sha256:...) into the engine; return it once the engine holds
    that very manifest."""
    match = DIGEST_REFERENCE.match(reference)
    if match is None:
        raise UsageError(f"{reference!r} is not a reference by digest (NAME@sha256:<64 hex>)",
                         hint="take it from lock/images.lock.json (`pushed`) or from the push's output")
    try:
        docker.image.pull(reference, quiet=True)
        held = docker.image.inspect(reference).id
    except DockerException as error:
        raise InputUnavailableError(f"cannot pull {reference}: {(error.stderr or '').strip()[-600:]}",
                                    hint="check the registry address and credentials (`docker login`)") from None
    if held != match["digest"]:
        raise DigestMismatchError(f"{reference}: the engine holds {held} after the pull, not {match['digest']}")
    return reference
