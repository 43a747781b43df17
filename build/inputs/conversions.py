"""Converted model files as locked inputs: models/<model>/<engine>/<file> in a server bundle, each
the bytes lock/conversions.json names, taken from the content store (re-hashed there) or converted
afresh by a `Converter` (the converter image, images/converter.py) and proven before they are
stored or placed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core.errors import ConvertedMismatchError, InputUnavailableError, StaleLockError
from hpsforge.core.files import sha256_file
from hpsforge.core.pipelines import ModelArtifact
from hpsforge.inputs.store import ContentStore, scratch_dir
from hpsforge.locks.conversions import FREEZE, ConversionsLock, EngineConversion, paddle_inputs


@dataclass(frozen=True)
class Conversion:
    """One model of one pipeline to convert for one engine, from its Paddle program and parameters."""

    pipeline: str
    model: str
    engine: str
    program: str
    params: str


# (the conversion, a folder holding the verified Paddle files, the folder to write into) -> None.
Converter = Callable[[Conversion, Path, Path], None]


def conversion(pipeline: str, artifact: ModelArtifact, engine: str) -> Conversion:
    program, params = artifact.paddle_model() or ("", "")  # the model's validator requires the pair
    return Conversion(pipeline, artifact.name, engine, program, params)


def convert_checked(
    job: Conversion, model_dir: Path, converter: Converter, entry: EngineConversion | None, store: ContentStore
) -> dict[str, Path]:
    """Convert, prove every written file against `entry` (when given) and store it: basename -> stored file."""
    with tempfile.TemporaryDirectory(prefix="convert-", dir=scratch_dir()) as tmp:
        out = Path(tmp)
        converter(job, model_dir, out)
        written = {path.name: path for path in sorted(out.iterdir()) if path.is_file()}
        if entry is not None:
            differences = []
            for name, locked in sorted(entry.files.items()):
                actual = sha256_file(written[name]) if name in written else "(not written)"
                if actual != locked.sha256:
                    differences.append(
                        f"{job.pipeline}/{job.model} {job.engine} {name}:\n"
                        f"      locked   sha256 {locked.sha256}\n      converted sha256 {actual}"
                    )
            if differences:
                raise ConvertedMismatchError(
                    "converted files differ from lock/conversions.json:\n    " + "\n    ".join(differences),
                    hint=f"the converter is not deterministic, or the lock is wrong; re-lock with `{FREEZE}` "
                    "only if the new conversion is trusted",
                )
        label = f"{job.pipeline}/{job.model} {job.engine}"
        return {name: store.add(path, sha256_file(path), f"{label} {name}") for name, path in written.items()}


def place(
    pipeline: str,
    artifacts: list[ModelArtifact],
    models_dir: Path,
    store: ContentStore,
    converter: Converter | None,
    *,
    fresh: bool = False,
    lock: ConversionsLock | None = None,
) -> None:
    """Write models_dir/<model>/<engine>/<file> for every converted engine each model declares,
    verified against the lock; models_dir/<model>/ already holds the verified Paddle files.
    fresh: convert again even when the store holds the files (repro)."""
    wanted = [(artifact, engine) for artifact in artifacts for engine in artifact.converted_engines()]
    if not wanted:
        return
    lock = lock or ConversionsLock.read()
    for artifact, engine in wanted:
        entry = lock.entry(pipeline, artifact.name, engine)
        if entry.inputs != paddle_inputs(artifact):
            raise StaleLockError(
                f"lock/conversions.json: {pipeline}/{artifact.name}'s {engine} conversion was made from other "
                "Paddle files",
                hint=f"re-lock with `{FREEZE}`",
            )
        destination = models_dir / artifact.name / engine
        label = f"{pipeline}/{artifact.name} {engine}"
        if not fresh and all(store.path(file.sha256).exists() for file in entry.files.values()):
            stored = {name: store.verified(file.sha256, f"{label} {name}") for name, file in entry.files.items()}
        elif converter is None:
            raise InputUnavailableError(
                f"{label}: its converted files are not in the content store",
                hint="`nox -s images -- <target>` converts them in the converter image",
            )
        else:
            stored = convert_checked(
                conversion(pipeline, artifact, engine), models_dir / artifact.name, converter, entry, store
            )
        destination.mkdir(parents=True, exist_ok=True)
        for name, path in sorted(stored.items()):
            shutil.copyfile(path, destination / name)
