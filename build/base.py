"""The base image: a Debian rootfs built by mmdebstrap from exactly the locked .debs.

freeze: mmdebstrap resolves the declared package set against the real mirror; the installed
        closure, matched to apt's (signature-checked) indices, becomes lock/debian.lock.json.
build:  the locked .debs are fetched into the content store and re-hashed, served to mmdebstrap
        as a local repository, and the rootfs tar enters BuildKit as `FROM scratch` + `ADD`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from hpsforge import buildkit
from hpsforge.config import DOCKERFILES, BaseConfig, ProjectConfig
from hpsforge.debian import BASE_LOCK, DebianLock, Resolution, local_repository, require_mmdebstrap, resolve, run_mmdebstrap
from hpsforge.files import atomic_write_text, canonical_json, sha256_bytes, sha256_file
from hpsforge.store import ContentStore, cache_root

BASE_DOCKERFILE = DOCKERFILES / "base.Dockerfile"
# Serving images need no manuals or translations; the copyright files (licenses) stay.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
)
ROLE = "base"


def _slim() -> list[str]:
    return [f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS]


def freeze(config: BaseConfig, store: ContentStore | None = None) -> DebianLock:
    """Resolve the declared package set, and everything it pulls in, to exact .deb files."""
    print(f"hpsforge: resolving the base package set on {config.suite} with mmdebstrap", flush=True)
    packages = resolve(Resolution(
        suite=config.suite, architecture=config.architecture, include=tuple(config.packages),
        sources=tuple(config.sources), keyring=config.keyring, snapshot=config.snapshot,
    ), store or ContentStore())
    return DebianLock(input_sha256=config.declaration_sha256(), packages=packages)


def rootfs_key(config: BaseConfig, lock: DebianLock) -> str:
    """What the rootfs depends on: this recipe, the lock, the declaration, mmdebstrap's version."""
    require_mmdebstrap()
    mmdebstrap = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()
    return sha256_bytes(canonical_json({
        "recipe": sha256_file(Path(__file__)),  # a change to how the rootfs is made rebuilds it
        "lock": sha256_bytes(lock.canonical_text().encode()),
        "base": config.declaration_sha256(),
        "epoch": config.source_date_epoch,
        "mmdebstrap": mmdebstrap,
    }).encode())


def build_rootfs(config: BaseConfig, lock: DebianLock, store: ContentStore, output: Path) -> None:
    """Write the base rootfs tar to `output`, from the locked .debs only."""
    debs = lock.fetch(store)  # re-hashes every file: a tampered .deb stops here
    print(f"hpsforge: building the base rootfs from {len(debs)} locked .debs", flush=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=output.parent) as tmp:
        repo = Path(tmp) / "repo"
        local_repository(config.suite, config.architecture, lock.packages, debs, repo)
        sources = "\n".join(source.line() for source in config.sources)
        partial = Path(tmp) / "rootfs.tar"
        # The lock is the package set: install every locked name on top of the essential set
        # (the .debs' own Priority fields differ from the archive's, so minbase would differ).
        run_mmdebstrap([
            "--variant=essential", f"--architectures={config.architecture}",
            f"--include={','.join(package.name for package in lock.packages)}",
            # The image's apt points at the real mirror, not at the build's local repository.
            f"--customize-hook=printf '%s\\n' {shlex.quote(sources)} > \"$1/etc/apt/sources.list\"",
            *_slim(), "--format=tar", config.suite, str(partial), f"deb [trusted=yes] copy://{repo} ./",
        ], epoch=config.source_date_epoch)
        os.replace(partial, output)


def build(config: ProjectConfig, *, lock: DebianLock | None = None, no_cache: bool = False,
          tag_suffix: str = "") -> buildkit.ImageRecord:
    """Verify the lock (default: lock/debian.lock.json), build or reuse the rootfs, build the image."""
    base = config.base
    lock = lock or DebianLock.read(BASE_LOCK)
    lock.require_fresh(BASE_LOCK, base.declaration_sha256())
    store = ContentStore()
    key = rootfs_key(base, lock)
    rootfs_dir = cache_root() / "rootfs"
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    rootfs, recorded = rootfs_dir / f"{key}.tar", rootfs_dir / f"{key}.tar.sha256"
    rootfs_sha256 = None
    if not no_cache and rootfs.exists() and recorded.exists():
        lock.fetch(store)  # the inputs are checked on every build, cached rootfs or not
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
    with tempfile.TemporaryDirectory(prefix="base-context-", dir=rootfs_dir) as context:
        os.link(rootfs, Path(context) / "rootfs.tar")
        input_sha256 = sha256_bytes(canonical_json({
            "rootfs": rootfs_sha256, "dockerfile": sha256_file(BASE_DOCKERFILE), "epoch": base.source_date_epoch,
        }).encode())
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=BASE_DOCKERFILE,
                context=Path(context),
                reference=f"{base.image}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=base.source_date_epoch,
                input_sha256=input_sha256,
            ),
            no_cache=no_cache,
        )
