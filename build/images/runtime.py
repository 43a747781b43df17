"""The runtime image of a target: base + the locked wheelhouse + Triton, built by BuildKit.

Everything is verified before BuildKit starts: the target's vendor blobs and the wheelhouse
against the target's pip lock (the graph's preflight has checked every lock against its declaration).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError, UsageError
from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.settings import settings
from hpsforge.images import buildkit, gpu, kernels
from hpsforge.images.containers import fetch_wheelhouse
from hpsforge.inputs import blobs, wheelhouse
from hpsforge.inputs.store import link_or_copy, scratch_dir
from hpsforge.locks import pip_locks
from hpsforge.locks.images_lock import ImageRecord

SOURCE_URL = "https://github.com/hpsforge/hpsforge"


def role(target: str) -> str:
    return f"runtime-{target}"


def build(
    config: ProjectConfig,
    target: str,
    base_image: ImageRecord,
    rc_image: ImageRecord,
    *,
    revision: str | None = None,
    no_cache: bool = False,
    tag_suffix: str = "",
    backend: buildkit.Backend = buildkit.Backend(),
) -> ImageRecord:
    """Verify every input of the target's runtime, then build it; nothing is tagged on failure."""
    target_config = config.target(target)
    dockerfile, serve_script = settings().dockerfiles / "runtime.Dockerfile", settings().dockerfiles / "hps-serve"
    manifest = blobs.load_manifest()
    blob_files = blobs.verify_blobs(target_config.blobs, manifest=manifest)
    cuda = gpu.stack(config, target, manifest)
    if cuda is not None and cuda.standin:  # never recorded: the sessions skip stand-in references
        print(
            f"hpsforge: WARNING: {', '.join(gpu.standin_blobs(config, target, manifest))} are generated "
            f"STAND-INS ({manifest.path}): the image is tagged *{gpu.STANDIN_SUFFIX}, not recorded, "
            "and cannot run on a GPU",
            flush=True,
        )
    wheels = fetch_wheelhouse(target, rc_image)
    if cuda is not None and target_config.cuda is not None and target_config.cuda.architectures:
        cuda = gpu.with_kernels(
            cuda, kernels.prove(target, target_config.cuda.architectures, _manifest(target), wheels)
        )
    lock = pip_locks.lock_path(target)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"runtime-{target}-", dir=scratch) as tmp:
        context, blob_context = Path(tmp) / "context", Path(tmp) / "blobs"
        context.mkdir()
        blob_context.mkdir()
        shutil.copyfile(lock, context / "requirements.txt")
        shutil.copyfile(serve_script, context / serve_script.name)
        for path in blob_files:
            link_or_copy(path, blob_context / path.name)
        if cuda is not None:  # the plan of its CUDA stack and the two scripts that follow it
            (context / "gpu").mkdir()
            (context / "gpu" / gpu.SPEC_NAME).write_text(cuda.canonical_json(), encoding="utf-8")
            for script in gpu.scripts():
                shutil.copyfile(script, context / "gpu" / script.name)
        inputs: dict[str, object] = {
            "base": base_image.digest,
            "lock": sha256_file(lock),
            "dockerfile": sha256_file(dockerfile),
            "serve": sha256_file(serve_script),
            "blobs": sorted(blobs.load_manifest().get(name).sha256 for name in target_config.blobs),
            "stage": target_config.stage,
            "revision": revision,
            "source": SOURCE_URL,
        }
        if cuda is not None:
            inputs["gpu"] = sorted((path.name, sha256_file(path)) for path in (context / "gpu").iterdir())
        if target_config.compression_level is not None:  # other bytes, other digest: another image
            inputs["compression_level"] = target_config.compression_level
        input_sha256 = sha256_bytes(canonical_json(inputs).encode())
        labels = {
            "org.opencontainers.image.title": f"hpsforge {target} runtime",
            "org.opencontainers.image.source": SOURCE_URL,
            "io.hpsforge.target": target,
            "io.hpsforge.inputs-sha256": input_sha256,
        }
        if revision:  # a revision label makes the digest commit-specific: release builds only
            labels["org.opencontainers.image.revision"] = revision
        suffix = ""
        if cuda is not None:
            labels.update(cuda.labels())
            if cuda.standin:
                labels["org.opencontainers.image.title"] += " (STAND-IN cuDNN/TensorRT: tests only)"
                suffix = gpu.STANDIN_SUFFIX
        return buildkit.build(
            buildkit.ImageBuild(
                role=role(target),
                dockerfile=dockerfile,
                context=context,
                reference=f"{target_config.image}:{input_sha256[:12]}{tag_suffix}{suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base_image),),
                folders=(("wheelhouse", wheels), ("blobs", blob_context)),
                stage=target_config.stage,
                labels=tuple(sorted(labels.items())),
                compression_level=target_config.compression_level,
            ),
            no_cache=no_cache,
            backend=backend,
        )


def _manifest(target: str) -> wheelhouse.WheelhouseManifest:
    manifest = wheelhouse.read_manifest(target)
    if manifest is None:  # fetch has just written it
        raise HpsforgeError(f"the {target} wheelhouse has no manifest ({wheelhouse.wheelhouse_dir(target)})")
    return manifest


def name(target: str, image: ImageRecord, repository: str | None, tag: str | None) -> ImageRecord:
    """Give a built runtime the user's repository and/or tag; its record under that name (same digest)."""
    _refuse_standin(image, "named")
    current_repository, _, current_tag = image.reference.rpartition(":")
    reference = f"{repository or current_repository}:{tag or current_tag}"
    try:
        docker.image.tag(image.reference, reference)
    except DockerException as error:
        raise HpsforgeError(f"cannot tag {image.reference} as {reference}: {(error.stderr or '').strip()}") from None
    named = image.model_copy(update={"reference": reference})
    print(f"hpsforge: tagged {reference}", flush=True)
    return named


def _refuse_standin(image: ImageRecord, action: str) -> None:
    if gpu.is_standin_reference(image.reference):
        raise UsageError(
            f"{image.reference} carries stand-in cuDNN/TensorRT libraries (a test build): "
            f"it is never {action} like a release",
            hint="put NVIDIA's tarballs in vendor_blobs/files and unset HPSFORGE_BLOB_MANIFEST",
        )
