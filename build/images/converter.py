"""The converter image (base + lock/requirements/convert.txt + converter/hps_convert.py), and each
model conversion run in it: no network, the verified Paddle files mounted read-only, one process
per conversion (OpenVINO's generated names come from a per-process counter)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import ConversionError
from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.settings import settings
from hpsforge.images import base, buildkit, rc
from hpsforge.images.containers import fetch_wheelhouse
from hpsforge.inputs.conversions import Conversion
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks import pip_locks
from hpsforge.locks.conversions import converter_script
from hpsforge.locks.images_lock import ImageRecord

ROLE = "converter"
REPOSITORY = "hpsforge/converter"


def build(
    config: ProjectConfig,
    base_image: ImageRecord,
    rc_image: ImageRecord,
    *,
    no_cache: bool = False,
    tag_suffix: str = "",
    backend: buildkit.Backend = buildkit.Backend(),
) -> ImageRecord:
    """Verify the converter's wheels against its lock, then build it offline on the base."""
    lock, dockerfile, script = (
        pip_locks.lock_path(pip_locks.CONVERT),
        settings().dockerfiles / "converter.Dockerfile",
        converter_script(),
    )
    wheels = fetch_wheelhouse(pip_locks.CONVERT, rc_image, lock_path=lock)
    with tempfile.TemporaryDirectory(prefix="converter-", dir=scratch_dir()) as tmp:
        context = Path(tmp)
        shutil.copyfile(lock, context / "requirements.txt")
        shutil.copyfile(script, context / script.name)
        inputs = {
            "base": base_image.digest,
            "lock": sha256_file(lock),
            "dockerfile": sha256_file(dockerfile),
            "script": sha256_file(script),
        }
        input_sha256 = sha256_bytes(canonical_json(inputs).encode())
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=dockerfile,
                context=context,
                reference=f"{REPOSITORY}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base_image),),
                folders=(("wheelhouse", wheels),),
                # Exported straight into the engine (no whole-image timestamp rewrite, minutes on 2
                # cores): the converter is a tool, never served; what it writes is proven by hash
                # against lock/conversions.json, whatever image made it.
                copy_only=True,
                # gzip level 1: its 1.3 GB layer compresses in a third of the time, beside the
                # runtime's export on the same 2 cores; never pushed, so its size matters little.
                compression_level=1,
                labels=(
                    ("io.hpsforge.inputs-sha256", input_sha256),
                    ("org.opencontainers.image.title", "hpsforge model converter"),
                ),
            ),
            no_cache=no_cache,
            backend=backend,
        )


class ImageConverter:
    """Runs conversions in one converter image: a `Converter` for inputs/conversions.py."""

    def __init__(self, image: ImageRecord, source_date_epoch: int) -> None:
        self.image = image
        self.source_date_epoch = source_date_epoch

    def __call__(self, conversion: Conversion, model_dir: Path, out_dir: Path) -> None:
        label = f"{conversion.pipeline}/{conversion.model} for {conversion.engine}"
        print(f"hpsforge: converting {label} in {self.image.reference} (no network)", flush=True)
        started = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for _source, chunk in docker.run(
                self.image.reference,
                [conversion.engine, "/in", conversion.program, conversion.params, "/out"],
                volumes=[(str(model_dir), "/in", "ro"), (str(out_dir), "/out", "rw")],
                envs={"SOURCE_DATE_EPOCH": str(self.source_date_epoch), "PYTHONHASHSEED": "0", "HOME": "/tmp"},
                networks=["none"],
                user=f"{os.getuid()}:{os.getgid()}",
                tmpfs=["/tmp"],
                remove=True,
                stream=True,
            ):
                for line in chunk.decode(errors="replace").splitlines():
                    if line.startswith("hps_convert"):
                        print(f"    {line}", flush=True)
        except DockerException as error:
            reason = (error.stderr or "").strip().splitlines()
            said = [line for line in reason if line.startswith("hps_convert")] or reason[-3:]
            raise ConversionError(
                f"{label}: the converter failed (exit {error.return_code}): " + " | ".join(said),
                hint="declare only the engines the model converts to in its pipeline.toml",
            ) from None
        print(f"hpsforge: converted {label} in {time.monotonic() - started:.1f} s", flush=True)


class LazyConverter:
    """A converter whose image (and the base and rc under it) is built or found only when a
    conversion is needed: staging outside a graph walk (assemble, bench, a single pipeline image)
    takes converted files from the store and converts only what it lacks."""

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config
        self._converter: ImageConverter | None = None

    def __call__(self, conversion: Conversion, model_dir: Path, out_dir: Path) -> None:
        if self._converter is None:
            base_image = base.build(self.config)
            image = build(self.config, base_image, rc.build(self.config, base_image))
            self._converter = ImageConverter(image, self.config.base.source_date_epoch)
        self._converter(conversion, model_dir, out_dir)
