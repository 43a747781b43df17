"""Image builds through python-on-whales' buildx: reproducible OCI output, digests recorded.

Every image is exported as an OCI layout with SOURCE_DATE_EPOCH and rewrite-timestamp (the
docker driver refuses rewrite-timestamp on the image exporter), then loaded into the engine,
whose containerd store names it by the same manifest digest, and kept in the cache (blobs shared
between layouts by hard links) as the build context of the images built on it. Nothing is tagged
or recorded unless the whole build succeeded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from pydantic import ValidationError
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core import proc
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import (
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from hpsforge.inputs.store import cache_root, scratch_dir
from hpsforge.locks.images_lock import ImageRecord

CA_BUNDLE_SECRET = "ca-bundle"
# `docker image load`/`save` of a layout: the gpu runtime's 5 GB take minutes over the local
# socket; an hour means the daemon is stuck, and CI gets a message instead of its own time-out.
IMAGE_STREAM_TIMEOUT_S = 3600


@dataclass(frozen=True)
class ImageBuild:
    """One BuildKit build: what to build, from what, and how it is named."""

    role: str
    dockerfile: Path
    context: Path
    reference: str
    source_date_epoch: int
    input_sha256: str
    build_args: tuple[tuple[str, str], ...] = ()
    # Named build contexts pinned to a digest: (name used in FROM, image record of the parent).
    parents: tuple[tuple[str, ImageRecord], ...] = ()
    # Named build contexts from local folders: (name used in --mount from=, folder).
    folders: tuple[tuple[str, Path], ...] = ()
    stage: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    use_ca_bundle: bool = False
    # A top-of-graph image whose Dockerfile only COPYs (a server on a runtime): its context's
    # mtimes are set to SOURCE_DATE_EPOCH and it is exported straight into the engine, skipping
    # the whole-image timestamp rewrite, so a code change rebuilds in seconds, still bit for bit.
    copy_only: bool = False
    # gzip level of the layers this build writes (None: BuildKit's default). The gpu runtime's
    # 5 GB layer takes minutes to compress and re-timestamp at the default level on 2 cores.
    compression_level: int | None = None


def host_ca_bundle() -> Path | None:
    """The CA bundle the host trusts (the PyPI proxy's CA is in it), if there is one."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _built_marker(spec: ImageBuild) -> Path:
    """Where the result of exactly this build is remembered: every field of the spec counts."""
    key = canonical_json(
        {
            "input": spec.input_sha256,
            "reference": spec.reference,
            "dockerfile": sha256_file(spec.dockerfile),
            "epoch": spec.source_date_epoch,
            "args": spec.build_args,
            "stage": spec.stage,
            "labels": spec.labels,
            "parents": [(name, parent.digest) for name, parent in spec.parents],
            "folders": [name for name, _ in spec.folders],
            "copy_only": spec.copy_only,
            **({"compression_level": spec.compression_level} if spec.compression_level is not None else {}),
        }
    )
    return cache_root() / "built" / f"{sha256_bytes(key.encode())}.json"


def _already_built(spec: ImageBuild) -> ImageRecord | None:
    """The earlier build of exactly these inputs, if the engine and the cache still hold it."""
    try:
        previous = ImageRecord.model_validate_json(_built_marker(spec).read_text())
        present = docker.image.inspect(spec.reference).id == previous.digest
    except (OSError, ValidationError, DockerException):
        return None
    if previous.reference != spec.reference or not present:
        return None
    return previous if spec.copy_only or (layout_dir(previous.digest) / "index.json").exists() else None


@dataclass(frozen=True)
class Backend:
    """How BuildKit runs the builds of one walk of the graph: which builder, which registry cache."""

    builder: str | None = None  # a `docker buildx` builder (remote, kubernetes); default: the engine's
    cache_from: str | None = None  # a registry cache to read (BuildKit's type=registry)
    cache_to: str | None = None  # ... and to write (mode=max: every layer, not only the final ones)
    reuse: bool = True  # False: build even when an image of the same inputs is in the engine

    def cache_reference(self, base: str | None, role: str) -> str | None:
        return f"{base}:{role}" if base else None  # one cache manifest per image of the graph


def build(spec: ImageBuild, *, no_cache: bool = False, backend: Backend = Backend()) -> ImageRecord:
    """Build `spec` reproducibly, load it into the engine, and return its record; all or nothing
    (the caller records the digests of a whole run at its end: BuildGraph, the sessions).

    The same inputs (input_sha256 covers the Dockerfile, the context and the parents' digests)
    give the same image, so an image already built from them is reused unless `no_cache`.
    """
    if not no_cache and backend.reuse and (previous := _already_built(spec)):
        print(f"hpsforge: {spec.reference} is up to date ({previous.digest})", flush=True)
        return previous
    secrets = []
    if spec.use_ca_bundle and (bundle := host_ca_bundle()):
        # A secret mount: present while a RUN step executes, never in a layer or in history.
        secrets.append(f"id={CA_BUNDLE_SECRET},src={bundle}")
    scratch = scratch_dir()
    print(f"hpsforge: building {spec.reference} ({spec.role})", flush=True)
    if spec.copy_only:
        _set_mtimes(spec.context, spec.source_date_epoch)
    # A builder of another driver cannot write into this engine's image store: OCI archives it is.
    straight_into_engine = spec.copy_only and backend.builder is None
    cache_from = backend.cache_reference(backend.cache_from, spec.role)
    cache_to = backend.cache_reference(backend.cache_to, spec.role)
    with tempfile.TemporaryDirectory(prefix=f"{spec.role}-", dir=scratch) as tmp:
        # A layout folder, not a tar: the gigabytes of a gpu runtime are written once, then linked.
        layout = Path(tmp) / "layout"
        output = (
            {"type": "image", "name": spec.reference}
            if straight_into_engine
            else {
                "type": "oci",
                "dest": str(layout),
                "tar": "false",
                "name": spec.reference,
                "rewrite-timestamp": "true",
            }
        )
        if spec.compression_level is not None:
            output.update({"compression": "gzip", "compression-level": str(spec.compression_level)})
        log: list[str] = []
        try:
            # With stream_logs=True the build yields its log lines; python-on-whales types the result
            # of every mode as one union (an image, lines, or nothing).
            lines = docker.buildx.build(
                spec.context,
                file=spec.dockerfile,
                build_args={"SOURCE_DATE_EPOCH": str(spec.source_date_epoch), **dict(spec.build_args)},
                output=output,
                build_contexts={
                    **{name: oci_layout_context(parent) for name, parent in spec.parents},
                    **{name: str(folder) for name, folder in spec.folders},
                },
                target=spec.stage,
                labels=dict(spec.labels),
                provenance=False,
                cache=not no_cache,
                cache_from=f"type=registry,ref={cache_from}" if cache_from and not no_cache else None,
                cache_to=f"type=registry,ref={cache_to},mode=max" if cache_to else None,
                builder=backend.builder,
                secrets=secrets,
                progress="plain",
                stream_logs=True,
            )
            for line in cast(Iterator[str], lines):
                print(line, end="", flush=True)
                log.append(line)
        except DockerException as error:
            raise HpsforgeError(
                f"build of {spec.reference} failed (exit {error.return_code}); "
                "nothing was tagged or recorded" + "".join(f"\n    {said}" for said in step_errors(log)),
                hint="the BuildKit log above shows the failing step",
            ) from None
        if straight_into_engine:
            digest = docker.image.inspect(spec.reference).id  # the containerd store's manifest digest
        else:
            digest = layout_manifest_digest(layout)
            _load_into_engine(layout, spec.reference, digest)
            _keep_layout(layout, layout_dir(digest))
    result = ImageRecord(reference=spec.reference, digest=digest, input_sha256=spec.input_sha256)
    atomic_write_text(_built_marker(spec), result.model_dump_json() + "\n")
    print(f"hpsforge: {spec.reference} = {digest}", flush=True)
    return result


# A tool in a build step that names what is wrong prints `<tool>: error: <what>`; BuildKit's plain
# log prefixes it with `#<step> <seconds> `. Those lines go into the build's error message.
STEP_ERROR = re.compile(r"^#\d+ \d+\.\d+ ([\w.-]+: error: .*)$")


def step_errors(log: list[str]) -> list[str]:
    """The `<tool>: error:` lines of a build log, in order, each once."""
    found = [match.group(1) for text in log for line in text.splitlines() if (match := STEP_ERROR.match(line))]
    return list(dict.fromkeys(found))


def layout_manifest_digest(layout: Path) -> str:
    """The digest of the single image manifest an OCI layout's index.json points at."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError):
        raise HpsforgeError(f"{layout}: not an OCI layout (no readable index.json)") from None
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise HpsforgeError(f"{layout}: expected one manifest in the OCI index, found {len(manifests)}")
    digest: str = manifests[0]["digest"]
    return digest


def layout_blob(layout: Path, digest: str) -> Path:
    """Where an OCI layout keeps the blob of `digest`."""
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def layout_manifest(layout: Path) -> dict[str, Any]:
    """The image manifest of a single-image OCI layout (its `config` and `layers` descriptors)."""
    manifest: dict[str, Any] = json.loads(layout_blob(layout, layout_manifest_digest(layout)).read_text())
    return manifest


def _layout_members(layout: Path) -> list[Path]:
    """What an OCI layout is (BuildKit's `ingest` scratch folder is not part of it)."""
    return [layout / "oci-layout", layout / "index.json", *sorted((layout / "blobs" / "sha256").iterdir())]


def _load_into_engine(layout: Path, reference: str, digest: str) -> None:
    """`docker load` the layout, streamed as a tar (no second copy on disk); the engine must then
    name `reference` by exactly `digest`."""

    def write(stdin: IO[bytes]) -> None:
        with tarfile.open(fileobj=stdin, mode="w|") as stream:
            for member in _layout_members(layout):
                stream.add(member, arcname=str(member.relative_to(layout)))

    proc.run(
        ["docker", "image", "load", "--quiet"],
        input=write,
        what=f"loading {reference} into the engine failed",
        timeout=IMAGE_STREAM_TIMEOUT_S,
    )
    loaded = docker.image.inspect(reference).id
    if loaded != digest:
        raise HpsforgeError(f"the engine names {reference} {loaded} after loading the build's {digest}")


def _set_mtimes(root: Path, epoch: int) -> None:
    """Make the context's metadata host-independent: epoch mtimes, umask-free modes."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def layout_dir(digest: str) -> Path:
    return cache_root() / "oci" / digest.removeprefix("sha256:")


def oci_layout_context(parent: ImageRecord) -> str:
    """A build context that is exactly `parent`'s manifest: FROM never resolves a tag or pulls."""
    return f"oci-layout://{ensure_layout(parent)}@{parent.digest}"


def ensure_layout(parent: ImageRecord) -> Path:
    """The image's OCI layout in the cache, saved from the engine if it was not kept at build time."""
    layout = layout_dir(parent.digest)
    if (layout / "index.json").exists():
        return layout
    # Built before this cache existed (or the cache was cleared): the engine still has it.
    layout.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        saved = Path(tmp) / "saved"

        def extract(stdout: IO[bytes]) -> None:
            try:
                with tarfile.open(fileobj=stdout, mode="r|") as stream:  # streamed: no tar on disk
                    stream.extractall(saved, filter="data")
            except tarfile.TarError:
                pass  # an empty or broken stream: docker's exit status says why

        proc.run(
            ["docker", "image", "save", parent.reference],
            output=extract,
            timeout=IMAGE_STREAM_TIMEOUT_S,
            what=f"parent image {parent.reference} ({parent.digest}) is neither cached nor in the engine",
            hint="rebuild it with `nox -s images`",
        )
        if layout_manifest_digest(saved) != parent.digest:
            raise HpsforgeError(
                f"{parent.reference} in the engine is not the recorded {parent.digest}",
                hint="rebuild it with `nox -s images`",
            )
        _keep_layout(saved, layout)
    return layout


def shared_blobs_dir() -> Path:
    """One copy of each blob for every cached layout: an image shares its parents' layers."""
    return cache_root() / "oci" / "blobs" / "sha256"


def _keep_layout(built: Path, layout: Path) -> None:
    """Move a complete layout folder into the cache by one rename (concurrent runs never see or
    break a half layout; the first to finish wins). Each blob becomes a hard link to the shared
    copy, so a pipeline image's layout costs only its own layers, not the runtime's gigabytes
    again; a layout stays a complete OCI layout for BuildKit, skopeo and the difference reports."""
    if (layout / "index.json").exists():
        return
    layout.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(built / "ingest", ignore_errors=True)
    _share_blobs(built / "blobs" / "sha256")
    try:
        os.replace(built, layout)
    except OSError:
        if not (layout / "index.json").exists():  # not just another run that finished first
            raise


def _share_blobs(blobs: Path) -> None:
    """Replace each blob by a link to the shared copy (adding it there when new). A blob is named by
    its digest, so two files of one name hold the same bytes; a shared copy of another size is
    damaged and is replaced."""
    if not blobs.is_dir():
        return
    shared = shared_blobs_dir()
    shared.mkdir(parents=True, exist_ok=True)
    for blob in blobs.iterdir():
        kept = shared / blob.name
        if kept.exists() and kept.stat().st_size == blob.stat().st_size:
            if not kept.samefile(blob):
                linked = blob.with_name(f".{blob.name}.link")
                try:
                    os.link(kept, linked)
                except OSError:
                    return  # another filesystem or no links: the layout keeps its own copies
                os.replace(linked, blob)
            continue
        fresh = kept.with_name(f".{blob.name}.{os.getpid()}")
        try:
            os.link(blob, fresh)
        except OSError:
            return
        os.replace(fresh, kept)


def forget_layout(digest: str) -> None:
    """Drop an image's cached layout, and every shared blob no other layout links to any more."""
    shutil.rmtree(layout_dir(digest), ignore_errors=True)
    shared = shared_blobs_dir()
    if shared.is_dir():
        for blob in shared.iterdir():
            if blob.stat().st_nlink == 1:  # only the shared copy is left
                blob.unlink(missing_ok=True)
