"""The runtime image of a target: base + the locked wheelhouse + Triton, built by BuildKit.

Everything is verified before BuildKit starts: the locks against their declarations, the
target's vendor blobs, and the wheelhouse against the target's pip lock.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge import blobs, buildkit, lockcheck, pip_locks, wheelhouse
from hpsforge.config import DOCKERFILES, ProjectConfig
from hpsforge.errors import HpsforgeError
from hpsforge.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.pipelines import Pipeline
from hpsforge.store import link_or_copy, scratch_dir

RUNTIME_DOCKERFILE = DOCKERFILES / "runtime.Dockerfile"
SERVE_SCRIPT = DOCKERFILES / "hps-serve"
SOURCE_URL = "https://github.com/hpsforge/hpsforge"


def role(target: str) -> str:
    return f"runtime-{target}"


def build(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str,
          base_image: buildkit.ImageRecord, rc_image: buildkit.ImageRecord, *,
          revision: str | None = None, no_cache: bool = False, tag_suffix: str = "") -> buildkit.ImageRecord:
    """Verify every input of the target's runtime, then build it; nothing is tagged on failure."""
    target_config = config.target(target)
    lockcheck.check(config, pipelines)
    blob_files = blobs.verify_blobs(target_config.blobs)
    wheels = wheelhouse.fetch(target, rc_image)
    lock = pip_locks.lock_path(target)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"runtime-{target}-", dir=scratch) as tmp:
        context, blob_context = Path(tmp) / "context", Path(tmp) / "blobs"
        context.mkdir()
        blob_context.mkdir()
        shutil.copyfile(lock, context / "requirements.txt")
        shutil.copyfile(SERVE_SCRIPT, context / SERVE_SCRIPT.name)
        for path in blob_files:
            link_or_copy(path, blob_context / path.name)
        inputs = {
            "base": base_image.digest,
            "lock": sha256_file(lock),
            "dockerfile": sha256_file(RUNTIME_DOCKERFILE),
            "serve": sha256_file(SERVE_SCRIPT),
            "blobs": sorted(blobs.load_manifest().get(name).sha256 for name in target_config.blobs),
            "stage": target_config.stage,
            "revision": revision,
            "source": SOURCE_URL,
        }
        input_sha256 = sha256_bytes(canonical_json(inputs).encode())
        labels = {
            "org.opencontainers.image.title": f"hpsforge {target} runtime",
            "org.opencontainers.image.source": SOURCE_URL,
            "io.hpsforge.target": target,
            "io.hpsforge.inputs-sha256": input_sha256,
        }
        if revision:  # a revision label makes the digest commit-specific: release builds only
            labels["org.opencontainers.image.revision"] = revision
        return buildkit.build(
            buildkit.ImageBuild(
                role=role(target),
                dockerfile=RUNTIME_DOCKERFILE,
                context=context,
                reference=f"{target_config.image}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base_image),),
                folders=(("wheelhouse", wheels), ("blobs", blob_context)),
                stage=target_config.stage,
                labels=tuple(sorted(labels.items())),
            ),
            no_cache=no_cache,
        )


def name(target: str, image: buildkit.ImageRecord, repository: str | None, tag: str | None) -> buildkit.ImageRecord:
    """Give a built runtime the user's repository and/or tag; its record under that name (same digest)."""
    current_repository, _, current_tag = image.reference.rpartition(":")
    reference = f"{repository or current_repository}:{tag or current_tag}"
    try:
        docker.image.tag(image.reference, reference)
    except DockerException as error:
        raise HpsforgeError(f"cannot tag {image.reference} as {reference}: {(error.stderr or '').strip()}") from None
    named = image.model_copy(update={"reference": reference})
    print(f"hpsforge: tagged {reference}", flush=True)
    return named
