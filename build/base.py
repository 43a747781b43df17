"""The base image: a Debian rootfs built by mmdebstrap from exactly the locked .debs.

freeze: mmdebstrap resolves the declared package set against the real mirror; the installed
        closure, matched to apt's (signature-checked) indices, becomes lock/debian.lock.json.
build:  the locked .debs are fetched into the content store and re-hashed, served to mmdebstrap
        as a local repository, and the rootfs tar enters BuildKit as `FROM scratch` + `ADD`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from hpsforge import buildkit
from hpsforge.config import DOCKERFILES, BaseConfig, ProjectConfig
from hpsforge.debian import BASE_LOCK, DebianLock, DebPackage, parse_deb822
from hpsforge.errors import HpsforgeError
from hpsforge.files import atomic_write_text, canonical_json, sha256_bytes, sha256_file
from hpsforge.store import ContentStore, cache_root, link_or_copy

BASE_DOCKERFILE = DOCKERFILES / "base.Dockerfile"
# Serving images need no manuals or translations; the copyright files (licenses) stay.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
)
ROLE = "base"


def _require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise HpsforgeError("mmdebstrap is not installed",
                            hint="as root on Debian, `./noxw -s engine` installs the pinned host tools")


def _mmdebstrap(config: BaseConfig, variant: str, include: list[str], mirrors: list[str], target: str,
                hooks: list[str], epoch: int | None = None) -> None:
    _require_mmdebstrap()
    command = [
        "mmdebstrap", f"--variant={variant}", f"--architectures={config.architecture}",
        f"--include={','.join(include)}",
        *(f"--customize-hook={hook}" for hook in hooks),
        *(f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS),
        "--format=" + ("null" if target == "/dev/null" else "tar"),
        config.suite, target, *mirrors,
    ]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-25:])
        raise HpsforgeError(f"mmdebstrap failed (exit {result.returncode}):\n{tail}")


def _apt_list_name(uri: str, suite: str, component: str, arch: str) -> str:
    """The file name apt gives a downloaded Packages index (its URItoFileName scheme)."""
    stem = uri.split("://", 1)[-1].rstrip("/").replace("/", "_")
    return f"{stem}_dists_{suite}_{component}_binary-{arch}_Packages"


def freeze(config: BaseConfig) -> DebianLock:
    """Resolve the declared package set, and everything it pulls in, to exact .deb files."""
    print(f"hpsforge: resolving the base package set on {config.suite} with mmdebstrap", flush=True)
    with tempfile.TemporaryDirectory(prefix="hpsforge-freeze-") as tmp:
        installed, lists = Path(tmp) / "installed.tsv", Path(tmp) / "lists"
        query = "dpkg-query --admindir=\"$1/var/lib/dpkg\" -W -f='${Package}\\t${Version}\\t${Architecture}\\n'"
        _mmdebstrap(
            config,
            "minbase",
            list(config.packages),
            [source.line() for source in config.sources],
            "/dev/null",
            [f"{query} > {shlex.quote(str(installed))}", f"sync-out /var/lib/apt/lists {lists}"],
        )
        index: dict[tuple[str, str, str], DebPackage] = {}
        for source in reversed(config.sources):  # the first source listed wins a tie
            for component in source.components:
                list_file = lists / _apt_list_name(source.uri, source.suite, component, config.architecture)
                for stanza in parse_deb822(list_file.read_text(encoding="utf-8")):
                    key = (stanza["Package"], stanza["Version"], stanza["Architecture"])
                    index[key] = DebPackage(
                        name=key[0], version=key[1], architecture=key[2], uri=source.uri,
                        filename=stanza["Filename"], size=int(stanza["Size"]), sha256=stanza["SHA256"],
                    )
        packages = []
        for line in installed.read_text().splitlines():
            key = tuple(line.split("\t"))
            if key not in index:
                raise HpsforgeError(f"installed package {' '.join(key)} is in none of the configured sources")
            packages.append(index[key])
    return DebianLock(input_sha256=config.declaration_sha256(), packages=sorted(packages, key=lambda p: p.name))


def _local_repository(config: BaseConfig, lock: DebianLock, debs: list[Path], repo: Path) -> None:
    """A flat apt repository holding only the locked files, for mmdebstrap's copy:// mirror."""
    repo.mkdir()
    stanzas = []
    for package, stored in zip(lock.packages, debs, strict=True):
        target = repo / package.deb_name
        link_or_copy(stored, target)
        control = subprocess.run(["dpkg-deb", "--field", str(target)], check=True,
                                 capture_output=True, text=True).stdout.rstrip("\n")
        stanzas.append(f"{control}\nFilename: ./{package.deb_name}\nSize: {package.size}\n"
                       f"SHA256: {package.sha256}\n")
    index = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(index)
    # mmdebstrap picks the essential set by suite name, so the flat repository must carry it.
    (repo / "Release").write_text(
        f"Suite: {config.suite}\nCodename: {config.suite}\n"
        f"Architectures: {config.architecture} all\n"
        f"SHA256:\n {sha256_bytes(index)} {len(index)} Packages\n"
    )


def rootfs_key(config: BaseConfig, lock: DebianLock) -> str:
    """What the rootfs depends on: this recipe, the lock, the declaration, mmdebstrap's version."""
    _require_mmdebstrap()
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
        _local_repository(config, lock, debs, repo)
        sources = "\n".join(source.line() for source in config.sources)
        partial = Path(tmp) / "rootfs.tar"
        # The lock is the package set: install every locked name on top of the essential set
        # (the .debs' own Priority fields differ from the archive's, so minbase would differ).
        _mmdebstrap(
            config,
            "essential",
            [package.name for package in lock.packages],
            [f"deb [trusted=yes] copy://{repo} ./"],
            str(partial),
            # The image's apt points at the real mirror, not at the build's local repository.
            [f"printf '%s\\n' {shlex.quote(sources)} > \"$1/etc/apt/sources.list\""],
            epoch=config.source_date_epoch,
        )
        os.replace(partial, output)


def build(config: ProjectConfig, *, lock: DebianLock | None = None, no_cache: bool = False,
          record: bool = True) -> buildkit.ImageRecord:
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
                reference=f"{base.image}:{input_sha256[:12]}",
                source_date_epoch=base.source_date_epoch,
                input_sha256=input_sha256,
            ),
            no_cache=no_cache,
            record=record,
        )
