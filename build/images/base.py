"""The base image: a Debian rootfs built by mmdebstrap from exactly the locked .debs.

The locked .debs (lock/debian.lock.json, resolved by freeze/apt.py) are fetched into the content
store and re-hashed, served to mmdebstrap as a local repository, and the rootfs tar enters
BuildKit as `FROM scratch` + `ADD`.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from hpsforge.core.config import BaseConfig, ProjectConfig
from hpsforge.core.files import (
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from hpsforge.core.settings import settings
from hpsforge.images import buildkit
from hpsforge.images.mmdebstrap import mmdebstrap_version, run_mmdebstrap
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore, cache_root
from hpsforge.locks.debian import DebianLock, base_lock_path
from hpsforge.locks.images_lock import BASE_ROLE, ImageRecord

# Serving images need no manuals or translations; the copyright files (licenses) stay.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
ROLE = BASE_ROLE


def _slim() -> list[str]:
    return [f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS]


def rootfs_key(config: BaseConfig, lock: DebianLock) -> str:
    """What the rootfs depends on: this recipe, the lock, the declaration, mmdebstrap's version."""
    mmdebstrap = mmdebstrap_version()
    return sha256_bytes(
        canonical_json(
            {
                "recipe": sha256_file(Path(__file__)),  # a change to how the rootfs is made rebuilds it
                "lock": sha256_bytes(lock.canonical_text().encode()),
                "base": config.declaration_sha256(),
                "epoch": config.source_date_epoch,
                "mmdebstrap": mmdebstrap,
            }
        ).encode()
    )


def build_rootfs(config: BaseConfig, lock: DebianLock, store: ContentStore, output: Path) -> None:
    """Write the base rootfs tar to `output`, from the locked .debs only."""
    files = debs.fetch(lock, store)  # re-hashes every file: a tampered .deb stops here
    print(f"hpsforge: building the base rootfs from {len(files)} locked .debs", flush=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=output.parent) as tmp:
        repo = Path(tmp) / "repo"
        debs.local_repository(config.suite, config.architecture, lock.packages, files, repo)
        sources = "\n".join(source.line() for source in config.sources)
        partial = Path(tmp) / "rootfs.tar"
        # The lock is the package set: install every locked name on top of the essential set
        # (the .debs' own Priority fields differ from the archive's, so minbase would differ).
        run_mmdebstrap(
            [
                "--variant=essential",
                f"--architectures={config.architecture}",
                f"--include={','.join(package.name for package in lock.packages)}",
                # The image's apt points at the real mirror, not at the build's local repository.
                f"--customize-hook=printf '%s\\n' {shlex.quote(sources)} > \"$1/etc/apt/sources.list\"",
                *_slim(),
                "--format=tar",
                config.suite,
                str(partial),
                f"deb [trusted=yes] copy://{repo} ./",
            ],
            epoch=config.source_date_epoch,
        )
        os.replace(partial, output)


def build(
    config: ProjectConfig,
    *,
    lock: DebianLock | None = None,
    no_cache: bool = False,
    tag_suffix: str = "",
    backend: buildkit.Backend = buildkit.Backend(),
) -> ImageRecord:
    """Verify the lock (default: lock/debian.lock.json), build or reuse the rootfs, build the image."""
    base = config.base
    lock_path = base_lock_path()
    lock = lock or DebianLock.read(lock_path)
    lock.require_fresh(lock_path, base.declaration_sha256())
    store = ContentStore()
    key = rootfs_key(base, lock)
    rootfs_dir = cache_root() / "rootfs"
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    rootfs, recorded = rootfs_dir / f"{key}.tar", rootfs_dir / f"{key}.tar.sha256"
    rootfs_sha256 = None
    if not no_cache and rootfs.exists() and recorded.exists():
        debs.fetch(lock, store)  # the inputs are checked on every build, cached rootfs or not
        rootfs_sha256 = sha256_file(rootfs)
        if rootfs_sha256 == recorded.read_text().strip():
            print(f"hpsforge: reusing the base rootfs {key[:12]} (same lock, same mmdebstrap)", flush=True)
        else:
            print(f"hpsforge: the cached rootfs {rootfs} changed on disk; building it again", flush=True)
            rootfs_sha256 = None
    if rootfs_sha256 is None:
        build_rootfs(base, lock, store, rootfs)
        rootfs_sha256 = sha256_file(rootfs)
        atomic_write_text(recorded, rootfs_sha256 + "\n")
    dockerfile = settings().dockerfiles / "base.Dockerfile"
    with tempfile.TemporaryDirectory(prefix="base-context-", dir=rootfs_dir) as context:
        os.link(rootfs, Path(context) / "rootfs.tar")
        input_sha256 = sha256_bytes(
            canonical_json(
                {
                    "rootfs": rootfs_sha256,
                    "dockerfile": sha256_file(dockerfile),
                    "epoch": base.source_date_epoch,
                }
            ).encode()
        )
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=dockerfile,
                context=Path(context),
                reference=f"{base.image}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=base.source_date_epoch,
                input_sha256=input_sha256,
            ),
            no_cache=no_cache,
            backend=backend,
        )
