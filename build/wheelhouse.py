"""The wheelhouse: every wheel a target's lock names, downloaded for the images' own platform.

Wheels are downloaded by pip inside the rc image (so the files chosen are those the images'
Python can install), checked against the lock twice (pip's --require-hashes, then again here),
stored by sha256, and linked under their file names in a per-target folder that image builds
install from with --no-index. A manifest records which lock the folder was made from, so a
second fetch of an unchanged lock downloads nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


from hpsforge import buildkit, pip_locks, requirements_lock
from typing import Annotated

from pydantic import StringConstraints, ValidationError

from hpsforge.config import Model, Sha256Hex
from hpsforge.errors import HpsforgeError
from hpsforge.files import atomic_write_text, canonical_json, sha256_file
from hpsforge.store import ContentStore, cache_root, scratch_dir


class WheelFile(Model):
    filename: Annotated[str, StringConstraints(pattern=r"^[^/\\]+\.whl$")]
    sha256: Sha256Hex
    size: int


class WheelhouseManifest(Model):
    """What a target's wheelhouse holds and which lock it was made from."""

    target: str
    lock_sha256: str
    wheels: list[WheelFile]


def wheelhouse_dir(target: str) -> Path:
    return cache_root() / "wheelhouse" / target


def read_manifest(target: str) -> WheelhouseManifest | None:
    path = wheelhouse_dir(target) / "manifest.json"
    try:
        return WheelhouseManifest.model_validate_json(path.read_text())
    except (FileNotFoundError, ValidationError):
        return None  # absent or damaged: the next fetch rebuilds it


def wheel_project(filename: str) -> str:
    """The canonical project name of a wheel file ('PyYAML-6.0-...' -> 'pyyaml')."""
    return requirements_lock.canonical_name(filename.split("-", 1)[0])


def fetch(target: str, rc_image: buildkit.ImageRecord, lock_path: Path | None = None,
          store: ContentStore | None = None) -> Path:
    """Make the target's wheelhouse match its lock; return the folder of verified wheels."""
    lock_path = lock_path or pip_locks.lock_path(target)
    lock = requirements_lock.read(lock_path)
    store = store or ContentStore()
    lock_sha256 = sha256_file(lock_path)
    manifest = read_manifest(target)
    if manifest is not None and manifest.lock_sha256 == lock_sha256:
        for wheel in manifest.wheels:
            store.verified(wheel.sha256, wheel.filename)  # a file changed since is refused
        total = sum(w.size for w in manifest.wheels) / 1e6
        print(f"hpsforge: {target} wheelhouse up to date: {len(manifest.wheels)} wheels, {total:.1f} MB, "
              "nothing downloaded", flush=True)
        return wheelhouse_dir(target)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"fetch-{target}-", dir=scratch) as tmp:
        work = Path(tmp)
        shutil.copyfile(lock_path, work / "requirements.txt")
        print(f"hpsforge: downloading the {len(lock.requirements)} wheels of {lock_path.name} in the rc image",
              flush=True)
        pip_locks.run_in_rc(rc_image, [
            "pip", "download", "--no-deps", "--only-binary", ":all:", "--require-hashes",
            "--progress-bar", "off", "--dest", "downloads", "--requirement", "requirements.txt",
        ], work, failure_hint=f"a wheel does not match {lock_path}: if the lock was edited by hand, "
                 "restore it from git or re-lock with `nox -s freeze`")
        wheels = _store_downloads(lock, work / "downloads", store)
    _publish(target, WheelhouseManifest(target=target, lock_sha256=lock_sha256, wheels=wheels), store)
    total = sum(w.size for w in wheels) / 1e6
    print(f"hpsforge: {target} wheelhouse: {len(wheels)} wheels, {total:.1f} MB", flush=True)
    return wheelhouse_dir(target)


def _store_downloads(lock: requirements_lock.RequirementsLock, downloads: Path,
                     store: ContentStore) -> list[WheelFile]:
    """Check every downloaded file against the lock, then move it into the store."""
    locked = lock.by_name()
    wheels, seen = [], set()
    for path in sorted(downloads.iterdir()):
        project = wheel_project(path.name)
        requirement = locked.get(project)
        digest = sha256_file(path)
        if requirement is None or digest not in requirement.hashes:
            raise HpsforgeError(
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
