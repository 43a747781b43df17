"""`nox -s assemble`: a pipeline's SDK bundle, output/<Name>_sdk/ and output/<Name>_sdk.tar.gz.

server/ is everything Triton needs on a runtime image: the model repository (per-device configs),
lib/ (hps_server and the pipeline's code), models/ (verified files; models/<model>/<engine>/ the
files converted for another engine, verified against lock/conversions.json), pipeline.toml (its settings)
and server.sh. client/ is the client wheel, its hash-locked requirements and the pipeline's
command-line client. The pipeline images bake in the same server/ folder. Two runs on the same
inputs write byte-identical archives: fixed times, owners and modes, sorted entries.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hpsforge.bundle import client_wheel, model_repo
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_output
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.settings import settings
from hpsforge.inputs import conversions, model_files
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import pip_locks

# Caches and editor leftovers never enter a bundle (they would change an image's inputs hash).
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*~", "*.orig", "*.rej", "*.swp")

BUNDLE_README = """# {name} SDK (hpsforge)

{description}

## server/
Run on an hpsforge runtime image (it has Triton, Paddle and the locked packages):

    docker run --rm --shm-size=256m -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
        -v "$PWD/server:/srv:ro" --entrypoint /srv/server.sh hpsforge/runtime-cpu:<tag>

server.sh picks the device's model configs (HPS_DEVICE=auto|cpu|gpu); see its header for the
other settings. Models: {models}.

## client/
    pip install --require-hashes -r client/requirements.txt
    pip install --no-deps client/{wheel}
    python client/client.py --help
"""


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=IGNORED, dirs_exist_ok=True)


def stage_server(
    name: str,
    pipeline: Pipeline,
    destination: Path,
    store: ContentStore | None = None,
    *,
    converter: conversions.Converter | None = None,
    fresh_conversions: bool = False,
) -> list[str]:
    """Write the pipeline's server/ folder; the model names it serves. Converted model files come
    from the store, else from `converter` (without one, a missing file is an error)."""
    folder, sdk_server = settings().pipelines_dir / name, settings().root / "sdk" / "server"
    source = folder / "server"
    names = model_repo.stage(source / "model_repo", destination / "model_repo")
    (destination / "MODELS").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    _copy_tree(sdk_server / "hps_server", destination / "lib" / "hps_server")
    if (source / "lib").is_dir():
        _copy_tree(source / "lib", destination / "lib")
    store = store or ContentStore()
    model_files.extract(name, pipeline.models, destination / "models", store)
    conversions.place(name, pipeline.models, destination / "models", store, converter, fresh=fresh_conversions)
    shutil.copyfile(folder / "pipeline.toml", destination / "pipeline.toml")
    shutil.copyfile(sdk_server / "server.sh", destination / "server.sh")
    (destination / "server.sh").chmod(0o755)
    return names


def stage_client(name: str, destination: Path, epoch: int) -> Path:
    """Write the pipeline's client/ folder; the wheel's path."""
    destination.mkdir(parents=True)
    script = settings().pipelines_dir / name / "client" / "client.py"
    if not script.exists():
        raise HpsforgeError(f"{script} is missing: every pipeline ships a command-line client")
    shutil.copyfile(script, destination / "client.py")
    lock = pip_locks.lock_path(pip_locks.CLIENT)
    if not lock.exists():
        raise HpsforgeError(f"{lock} is missing", hint="lock the client with `nox -s freeze -- client`")
    shutil.copyfile(lock, destination / "requirements.txt")
    return client_wheel.build(pip_locks.client_project(), destination, epoch)


def write_archive(folder: Path, archive: Path, epoch: int) -> None:
    """A tar.gz of `folder` (as its own name) that depends only on the files' contents."""

    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
        executable = info.isdir() or info.mode & 0o100
        info.mode = 0o755 if executable else 0o644
        return info

    paths = [folder, *sorted(folder.rglob("*"), key=lambda path: path.relative_to(folder).as_posix())]
    with (
        atomic_output(archive) as stream,
        gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0, compresslevel=9) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as bundle,
    ):
        for path in paths:
            arcname = (Path(folder.name) / path.relative_to(folder)).as_posix()
            bundle.add(path, arcname=arcname, recursive=False, filter=normalised)


def assemble(
    name: str,
    pipeline: Pipeline,
    epoch: int,
    *,
    server: bool = True,
    client: bool = True,
    output_dir: Path | None = None,
    store: ContentStore | None = None,
    converter: conversions.Converter | None = None,
) -> Path:
    """Write output_dir (default output/)/<Name>_sdk/ and its .tar.gz; the previous bundle stays
    until both are done."""
    output_dir = settings().output_dir if output_dir is None else output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / f"{name}_sdk"
    with tempfile.TemporaryDirectory(prefix=f".{name}_sdk-", dir=output_dir) as tmp:
        staging = Path(tmp) / final.name
        staging.mkdir()
        served, wheel_name = [], "hps_client-*.whl"
        if server:
            served = stage_server(name, pipeline, staging / "server", store, converter=converter)
        if client:
            wheel_name = stage_client(name, staging / "client", epoch).name
        (staging / "README.md").write_text(
            BUNDLE_README.format(
                name=name,
                description=pipeline.description,
                models=", ".join(served) or "(server not included)",
                wheel=wheel_name,
            ),
            encoding="utf-8",
        )
        archive = Path(tmp) / f"{final.name}.tar.gz"
        write_archive(staging, archive, epoch)
        # Both are complete before either replaces the previous bundle.
        previous = Path(tmp) / "previous"
        if final.exists():
            os.replace(final, previous)
        os.replace(staging, final)
        os.replace(archive, output_dir / archive.name)
    return final
