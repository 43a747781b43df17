"""The bench images: a runtime + the bench-only tools (lock/requirements/bench.txt: Flask,
gunicorn, matplotlib) + a pipeline's server bundle, the same bundle as its pipeline image (checked
by hash). They run the baselines, the load generators and the plot; never recorded, never released."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hpsforge.bundle import assemble
from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.pipelines import Pipeline, image_slug
from hpsforge.core.settings import settings
from hpsforge.images import buildkit, pipeline_images
from hpsforge.images.containers import fetch_wheelhouse
from hpsforge.images.converter import LazyConverter
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks import images_lock, pip_locks


def bench_image(
    config: ProjectConfig,
    name: str,
    pipeline: Pipeline,
    target: str,
    runtime_image: images_lock.ImageRecord,
    rc_image: images_lock.ImageRecord,
    pipeline_image: images_lock.ImageRecord,
) -> images_lock.ImageRecord:
    """The runtime + the bench-only tools + the pipeline's server bundle (the same bundle as its
    pipeline image: checked by hash). Never recorded, never released."""
    lock = pip_locks.lock_path(pip_locks.BENCH)
    if differences := pip_locks.shared_pin_differences(lock, pip_locks.lock_path(target)):
        raise HpsforgeError(
            f"{lock} pins packages of the {target} runtime at other versions: " + "; ".join(differences),
            hint=pip_locks.refresh_command(pip_locks.BENCH),
        )
    wheels = fetch_wheelhouse(pip_locks.BENCH, rc_image, lock_path=lock)
    with tempfile.TemporaryDirectory(prefix=f"bench-{image_slug(name)}-", dir=scratch_dir()) as tmp:
        context = Path(tmp)
        server = context / pipeline_images.SERVER_IN_IMAGE.relative_to("/")
        assemble.stage_server(name, pipeline, server, converter=LazyConverter(config))
        if pipeline_images.input_sha256(runtime_image, server) != pipeline_image.input_sha256:
            raise HpsforgeError(
                f"{pipeline_image.reference} was not built from the current {name} sources",
                hint=f"rebuild it with `nox -s images -- {target}`",
            )
        (context / "requirements.txt").write_bytes(lock.read_bytes())
        dockerfile = settings().dockerfiles / "bench.Dockerfile"
        inputs = {
            "runtime": runtime_image.digest,
            "dockerfile": sha256_file(dockerfile),
            "lock": sha256_file(lock),
            "pipeline": pipeline_image.input_sha256,
        }
        digest = sha256_bytes(canonical_json(inputs).encode())
        # copy_only: exported straight into the engine (no whole-image timestamp rewrite): a
        # bench image need not be bit-for-bit reproducible, only built from locked inputs.
        return buildkit.build(
            buildkit.ImageBuild(
                role=f"bench-{image_slug(name)}-{target}",
                dockerfile=dockerfile,
                context=context,
                reference=f"hpsforge/bench-{image_slug(name)}-{target}:{digest[:12]}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=digest,
                parents=(("runtime", runtime_image),),
                folders=(("wheelhouse", wheels),),
                copy_only=True,
            )
        )
