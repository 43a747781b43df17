"""The wheelhouse: every wheel a lock names, downloaded for the images' own platform.

Wheels are downloaded by pip inside an image of the graph (the rc image for targets, the base
for the rc image's own tools), so the files chosen are those the images' Python installs; they
are checked against the lock twice (pip's --require-hashes, then again here), stored by sha256,
and linked under their file names in a per-lock folder that image builds install from with
--no-index and no network. The wheelset (lock sha256 -> exact files) is kept, so an unchanged
lock never asks an index again: with the store warm (or seeded from an input archive) a fetch
works offline.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints, ValidationError

from hpsforge.core import proc
from hpsforge.core.config import Model, Sha256Hex
from hpsforge.core.errors import HashMismatchError, HpsforgeError, InputUnavailableError
from hpsforge.core.files import atomic_write_text, canonical_json, sha256_file
from hpsforge.inputs.store import ContentStore, cache_root, scratch_dir
from hpsforge.locks import requirements_lock
from hpsforge.locks.pip_locks import host_lock_path
from hpsforge.locks.pip_locks import lock_path as target_lock_path


class WheelFile(Model):
    filename: Annotated[str, StringConstraints(pattern=r"^[^/\\]+\.whl$")]
    sha256: Sha256Hex
    size: int


class WheelhouseManifest(Model):
    """What a target's wheelhouse holds and which lock (by the sha256 of its file) it satisfies."""

    target: str
    lock_sha256: str
    wheels: list[WheelFile]


# Downloads the wheels of `work`/requirements.txt into `work`/downloads (the images' platform: pip
# in an image of the graph, images/containers.py; or the host's own pip, for the host lock).
Downloader = Callable[[Path], None]
# The host's own pip settings (local wheel folders, extra indexes, caps) must not shape the host
# environment's lock or the wheels fetched for it. (./noxw keeps the same list.)
IGNORED_PIP_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")
# The host environment's wheels, downloaded from PyPI: after an hour the index is not answering.
HOST_DOWNLOAD_TIMEOUT_S = 3600


def host_pip_environment() -> dict[str, str]:
    """This process's environment without the host's pip settings (and no pip config file)."""
    env = {key: value for key, value in os.environ.items() if key not in IGNORED_PIP_SETTINGS}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def wheelhouse_dir(target: str) -> Path:
    return cache_root() / "wheelhouse" / target


def wheelset_path(lock_sha256: str) -> Path:
    """Which exact files satisfy a lock on the images' platform, kept beside the store (an
    imported archive writes these too), so an unchanged lock is never resolved against an index again."""
    return cache_root() / "wheelsets" / f"{lock_sha256}.json"


def read_wheelset(lock_sha256: str) -> WheelhouseManifest | None:
    try:
        return WheelhouseManifest.model_validate_json(wheelset_path(lock_sha256).read_text())
    except (FileNotFoundError, ValidationError):
        return None  # absent or damaged: the next fetch downloads again


def write_wheelset(manifest: WheelhouseManifest) -> None:
    atomic_write_text(wheelset_path(manifest.lock_sha256), canonical_json(manifest.model_dump(mode="json")))


def read_manifest(target: str) -> WheelhouseManifest | None:
    path = wheelhouse_dir(target) / "manifest.json"
    try:
        return WheelhouseManifest.model_validate_json(path.read_text())
    except (FileNotFoundError, ValidationError):
        return None  # absent or damaged: the next fetch rebuilds it


def wheel_project(filename: str) -> str:
    """The canonical project name of a wheel file ('PyYAML-6.0-...' -> 'pyyaml')."""
    return requirements_lock.canonical_name(filename.split("-", 1)[0])


def fetch(
    target: str,
    download: Downloader,
    lock_path: Path | None = None,
    store: ContentStore | None = None,
    where: str = "an image",
) -> Path:
    """Make the target's wheelhouse match its lock; return the folder of verified wheels.

    With the lock's wheelset known and every file in the store, nothing is downloaded (works
    offline); otherwise `download` fetches the lock's wheels (in an image of the graph).
    """
    lock_path = lock_path or target_lock_path(target)
    lock = requirements_lock.read(lock_path)
    store = store or ContentStore()
    lock_sha256 = sha256_file(lock_path)
    known = read_wheelset(lock_sha256)
    if known is not None and all(store.path(wheel.sha256).exists() for wheel in known.wheels):
        for wheel in known.wheels:
            store.verified(wheel.sha256, wheel.filename)  # a file changed since is refused
        current = read_manifest(target)
        if current is None or current.lock_sha256 != lock_sha256:
            _publish(target, known.model_copy(update={"target": target}), store)
        total = sum(w.size for w in known.wheels) / 1e6
        print(
            f"hpsforge: {target} wheelhouse up to date: {len(known.wheels)} wheels, {total:.1f} MB, nothing downloaded",
            flush=True,
        )
        return wheelhouse_dir(target)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"fetch-{target}-", dir=scratch) as tmp:
        work = Path(tmp)
        shutil.copyfile(lock_path, work / "requirements.txt")
        print(f"hpsforge: downloading the {len(lock.requirements)} wheels of {lock_path.name} in {where}", flush=True)
        download(work)
        wheels = store_downloads(lock, work / "downloads", store)
    manifest = WheelhouseManifest(target=target, lock_sha256=lock_sha256, wheels=wheels)
    write_wheelset(manifest)
    _publish(target, manifest, store)
    total = sum(w.size for w in wheels) / 1e6
    print(f"hpsforge: {target} wheelhouse: {len(wheels)} wheels, {total:.1f} MB", flush=True)
    return wheelhouse_dir(target)


def wheelset(
    name: str, lock_path: Path, download: Callable[[], Downloader], store: ContentStore | None = None
) -> WheelhouseManifest:
    """The lock's wheelset, from the store when known, else fetched (`download()` is asked for
    only then: it may build an image)."""
    store = store or ContentStore()
    known = read_wheelset(sha256_file(lock_path))
    if known is None or not all(store.path(wheel.sha256).exists() for wheel in known.wheels):
        fetch(name, download(), lock_path=lock_path, store=store)
        known = read_wheelset(sha256_file(lock_path))
        if known is None:
            raise HpsforgeError(f"{lock_path}: no wheelset was recorded after its wheels were downloaded")
    return known.model_copy(update={"target": name})


def store_downloads(lock: requirements_lock.RequirementsLock, downloads: Path, store: ContentStore) -> list[WheelFile]:
    """Check every downloaded file against the lock, then move it into the store."""
    locked = lock.by_name()
    wheels, seen = [], set()
    for path in sorted(downloads.iterdir()):
        project = wheel_project(path.name)
        requirement = locked.get(project)
        digest = sha256_file(path)
        if requirement is None or digest not in requirement.hashes:
            raise HashMismatchError(
                f"{path.name}: sha256 {digest} is not among the hashes {lock.path} holds for {project}",
                hint="re-lock with `nox -s freeze`",
            )
        target = store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(path, target)
        wheels.append(WheelFile(filename=path.name, sha256=digest, size=target.stat().st_size))
        seen.add(project)
    missing = sorted(set(locked) - seen)
    if missing:
        raise HpsforgeError(f"no wheel was downloaded for {', '.join(missing)} of {lock.path}")
    return wheels


def _publish(target: str, manifest: WheelhouseManifest, store: ContentStore) -> None:
    """Swap in a complete folder of links to the stored wheels; never a half-made one."""
    final = wheelhouse_dir(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target}.", dir=final.parent))
    retired = Path(tempfile.mkdtemp(prefix=f".{target}.old.", dir=final.parent))
    try:
        for wheel in manifest.wheels:
            os.link(store.path(wheel.sha256), staging / wheel.filename)
        atomic_write_text(staging / "manifest.json", canonical_json(manifest.model_dump(mode="json")))
        if final.exists():
            os.replace(final, retired / target)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def host_wheelset(store: ContentStore) -> WheelhouseManifest:
    """The wheels ./noxw installs on this host (its Python and platform), downloaded here if unknown:
    an input archive carries them, so a host with no network sets up the same environment."""
    lock_path = host_lock_path()
    lock_sha256 = sha256_file(lock_path)
    known = read_wheelset(lock_sha256)
    if known is not None and all(store.path(w.sha256).exists() for w in known.wheels):
        return known
    lock = requirements_lock.read(lock_path)
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="host-wheels-", dir=store.root.parent) as tmp:
        print(f"hpsforge: downloading the {len(lock.requirements)} wheels of {lock_path.name}", flush=True)
        proc.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--require-hashes",
                "--dest",
                tmp,
                "-r",
                str(lock_path),
            ],
            env=host_pip_environment(),
            timeout=HOST_DOWNLOAD_TIMEOUT_S,
            error=InputUnavailableError,
            what="pip could not download the host environment's wheels",
        )
        wheels = store_downloads(lock, Path(tmp), store)
    manifest = WheelhouseManifest(target="host", lock_sha256=lock_sha256, wheels=wheels)
    write_wheelset(manifest)
    return manifest
