"""One image per pipeline and target: the runtime plus the pipeline's verified server bundle."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from hpsforge.bundle import assemble
from hpsforge.core.config import ProjectConfig
from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.pipelines import Pipeline, image_slug
from hpsforge.core.settings import settings
from hpsforge.images import buildkit, gpu
from hpsforge.images.converter import LazyConverter
from hpsforge.inputs.conversions import Converter
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks.images_lock import ImageRecord

SERVER_IN_IMAGE = PurePosixPath("/opt/hps/server")
REPOSITORY_PREFIX = "hpsforge"


def role(name: str, target: str) -> str:
    return f"pipeline-{image_slug(name)}-{target}"


def repository(name: str, target: str) -> str:
    return f"{REPOSITORY_PREFIX}/{image_slug(name)}-{target}"


def _tree_sha256(folder: Path) -> str:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return sha256_bytes(
        canonical_json(
            [
                (path.relative_to(folder).as_posix(), sha256_file(path), bool(path.stat().st_mode & 0o100))
                for path in files
            ]
        ).encode()
    )


def input_sha256(runtime_image: ImageRecord, server: Path) -> str:
    """What names a pipeline image: its runtime, its Dockerfile and its staged server bundle."""
    inputs = {
        "runtime": runtime_image.digest,
        "dockerfile": sha256_file(settings().dockerfiles / "pipeline.Dockerfile"),
        "server": _tree_sha256(server),
    }
    return sha256_bytes(canonical_json(inputs).encode())


def build(
    config: ProjectConfig,
    name: str,
    pipeline: Pipeline,
    target: str,
    runtime_image: ImageRecord,
    *,
    converter: Converter | None = None,
    no_cache: bool = False,
    tag_suffix: str = "",
    backend: buildkit.Backend = buildkit.Backend(),
) -> ImageRecord:
    """Stage the server bundle (model files and converted files verified on the way), then build
    the image on the runtime. no_cache (repro): every conversion is made again, not taken from the store."""
    print(f"hpsforge: staging the {name} server for {target}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"pipeline-{image_slug(name)}-", dir=scratch_dir()) as tmp:
        context = Path(tmp)
        # Staged at its image path: COPY onto the existing /opt sets every directory's time
        # from the context, where a COPY creating /opt/hps/server would stamp /opt/hps with "now".
        server = context / SERVER_IN_IMAGE.relative_to("/")
        assemble.stage_server(
            name, pipeline, server, converter=converter or LazyConverter(config), fresh_conversions=no_cache
        )
        inputs_sha256 = input_sha256(runtime_image, server)
        suffix, standin = "", gpu.is_standin_reference(runtime_image.reference)
        if standin:  # on a stand-in runtime (tests): tagged and labelled so, never recorded
            suffix = gpu.STANDIN_SUFFIX
        labels = {
            "org.opencontainers.image.title": f"hpsforge {name} pipeline ({target})",
            "org.opencontainers.image.description": pipeline.description,
            "io.hpsforge.pipeline": name,
            "io.hpsforge.target": target,
            "io.hpsforge.inputs-sha256": inputs_sha256,
        }
        if standin:
            labels[gpu.STANDIN_LABEL] = "true: built on a runtime with stand-in cuDNN/TensorRT (tests only)"
        if cpu_only := gpu.cpu_only_models(config, target, pipeline):
            labels[gpu.CPU_ONLY_LABEL] = ",".join(cpu_only)
        return buildkit.build(
            buildkit.ImageBuild(
                role=role(name, target),
                dockerfile=settings().dockerfiles / "pipeline.Dockerfile",
                context=context,
                reference=f"{repository(name, target)}:{inputs_sha256[:12]}{tag_suffix}{suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=inputs_sha256,
                parents=(("runtime", runtime_image),),
                labels=tuple(sorted(labels.items())),
                copy_only=True,
            ),
            no_cache=no_cache,
            backend=backend,
        )
