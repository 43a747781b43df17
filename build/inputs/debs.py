"""The .deb files a Debian lock names: fetched into the content store (mirror, then snapshot, then
input archives), re-hashed on use, and served to apt and mmdebstrap as a flat local repository."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.files import sha256_bytes
from hpsforge.inputs.store import ContentStore, link_or_copy
from hpsforge.locks.debian import FREEZE_COMMAND, DebianLock, DebPackage

DPKG_DEB_TIMEOUT_S = 60  # reads one control member of a local file
PARALLEL_DOWNLOADS = 8


def fetch(lock: DebianLock, store: ContentStore) -> list[Path]:
    """Every locked .deb from the store (mirror, then snapshot, then input archives when absent),
    each re-hashed now."""
    missing = [p for p in lock.packages if not store.path(p.sha256).exists()]
    if missing:
        total = sum(p.size for p in missing) / 1e6
        print(f"hpsforge: downloading {len(missing)} .debs ({total:.1f} MB)", flush=True)
    # Side by side: a mirror serves each small file after a round trip; one at a time, the base's
    # 129 files took 21 s. map() keeps the lock's order and raises the first failure.
    with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS, thread_name_prefix="deb") as pool:
        return list(
            pool.map(
                lambda package: store.fetch(
                    package.sources(), package.sha256, package.size, package.deb_name, FREEZE_COMMAND
                ),
                lock.packages,
            )
        )


def local_repository(suite: str, architecture: str, packages: list[DebPackage], debs: list[Path], repo: Path) -> None:
    """A flat apt repository holding only the locked files, for mmdebstrap's and apt's file mirrors."""
    repo.mkdir()
    stanzas = []
    for package, stored in zip(packages, debs, strict=True):
        target = repo / package.deb_name
        link_or_copy(stored, target)
        control = proc.run(
            ["dpkg-deb", "--field", target],
            what=f"reading the control fields of {target.name} failed",
            timeout=DPKG_DEB_TIMEOUT_S,
        ).stdout.rstrip("\n")
        stanzas.append(f"{control}\nFilename: ./{package.deb_name}\nSize: {package.size}\nSHA256: {package.sha256}\n")
    index = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(index)
    # mmdebstrap picks the essential set by suite name, so the flat repository must carry it.
    (repo / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\n"
        f"Architectures: {architecture} all\n"
        f"SHA256:\n {sha256_bytes(index)} {len(index)} Packages\n"
    )
