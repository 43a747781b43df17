"""Debian package locks: resolving package sets to exact .deb files, and fetching them durably.

Two locks share one shape (DebianLock): lock/engine.lock.json, the whole closure a bare host
installs to bring up the engine (and the host tools tests use), and lock/debian.lock.json, the
package closure of the base image. Both are resolved by mmdebstrap (apt, checking the suites'
signatures) and record, per file, its mirror URL and the snapshot.debian.org URL that keeps
serving the same bytes after the mirror drops them.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from debian.deb822 import Deb822
from pydantic import StringConstraints, ValidationError

from hpsforge.config import (LOCK_DIR, AptSource, DebianName, DebianVersion, EngineConfig, HostPackage, Model,
                             Sha256Hex)
from hpsforge.debversion import Constraint, sorted_versions
from hpsforge.errors import HashMismatchError, HpsforgeError, InputUnavailableError, StaleLockError
from hpsforge.files import atomic_write_text, canonical_json, sha256_bytes
from hpsforge.store import ContentStore, download_bytes, link_or_copy, scratch_dir

ENGINE_LOCK = LOCK_DIR / "engine.lock.json"
BASE_LOCK = LOCK_DIR / "debian.lock.json"
FREEZE_COMMAND = "nox -s freeze"


class DebPackage(Model):
    """One exact .deb: where to get it, and enough to prove it is the one that was locked."""

    name: DebianName
    version: DebianVersion
    architecture: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
    uri: str
    filename: str
    size: int
    sha256: Sha256Hex
    # snapshot.debian.org/file/<sha1>: the same bytes, long after the mirror removed them.
    snapshot: str
    # The archive's priority (its override, not the .deb's own field): which packages a minimal
    # system holds depends on it, so a mirror rebuilt from the lock resolves the same closure.
    priority: str

    @property
    def url(self) -> str:
        return f"{self.uri}/{self.filename}"

    @property
    def deb_name(self) -> str:
        """The conventional file name, as apt writes it (epoch colon escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"

    def sources(self) -> list[tuple[str, str]]:
        """Where the file is fetched from, in order (then from input archives)."""
        return [("mirror", self.url), ("snapshot", self.snapshot)]


class DebianLock(Model):
    """A resolved package set and the hash of the declaration it was resolved from."""

    input_sha256: Sha256Hex
    packages: list[DebPackage]

    @classmethod
    def read(cls, path: Path) -> "DebianLock":
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StaleLockError(
                f"{path}: lock file missing", hint=f"create it with `{FREEZE_COMMAND}`"
            ) from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise StaleLockError(
                f"{path}: malformed lock ({where}: {first['msg']})",
                hint=f"restore it from git or rewrite it with `{FREEZE_COMMAND}`",
            ) from None

    def canonical_text(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def write(self, path: Path) -> bool:
        return atomic_write_text(path, self.canonical_text())

    def require_fresh(self, path: Path, declared_sha256: str) -> None:
        if self.input_sha256 != declared_sha256:
            raise StaleLockError(
                f"{path} is stale: hpsforge.toml changed since it was locked "
                f"(locked from {self.input_sha256[:12]}, declared now {declared_sha256[:12]})",
                hint=f"re-lock with `{FREEZE_COMMAND}`",
            )

    def fetch(self, store: ContentStore) -> list[Path]:
        """Every locked .deb from the store (mirror, then snapshot, then input archives when absent),
        each re-hashed now."""
        missing = [p for p in self.packages if not store.path(p.sha256).exists()]
        if missing:
            total = sum(p.size for p in missing) / 1e6
            print(f"hpsforge: downloading {len(missing)} .debs ({total:.1f} MB)", flush=True)
        return [store.fetch(package.sources(), package.sha256, package.size, package.deb_name, FREEZE_COMMAND)
                for package in self.packages]


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Split a Packages/Release/status file into stanzas of (field -> value), with python-debian."""
    return [dict(stanza) for stanza in Deb822.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False)
            if stanza]


def host_architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def signed_release(mirror: str, suite: str, keyring: Path) -> dict[str, tuple[str, int]]:
    """Verify a suite's InRelease with gpgv; return its SHA256 table (path -> (hash, size))."""
    url = f"{mirror}/dists/{suite}/InRelease"
    signed = download_bytes(url, f"{suite} InRelease")
    verify = subprocess.run(
        ["gpgv", "--keyring", str(keyring), "--output", "-", "-"],
        input=signed,
        capture_output=True,
    )
    if verify.returncode != 0:
        raise HashMismatchError(
            f"{url}: signature does not verify against {keyring}:\n"
            + verify.stderr.decode(errors="replace").strip()
        )
    release = parse_deb822(verify.stdout.decode())[0]
    table = {}
    for line in release.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = (parts[0], int(parts[1]))
    return table


def signed_packages_index(mirror: str, suite: str, keyring: Path, arch: str) -> list[dict[str, str]]:
    """The main component's Packages index of a suite, proven by the signed InRelease."""
    table = signed_release(mirror, suite, keyring)
    member = f"main/binary-{arch}/Packages.xz"
    if member not in table:
        raise InputUnavailableError(f"{mirror} {suite}: its InRelease lists no {member}")
    expected, size = table[member]
    data = download_bytes(f"{mirror}/dists/{suite}/{member}", f"{suite} {member}")
    if sha256_bytes(data) != expected or len(data) != size:
        raise HashMismatchError(f"{mirror} {suite} {member}: bytes do not match the signed InRelease")
    return parse_deb822(lzma.decompress(data).decode("utf-8"))


def pin_host_package(wanted: HostPackage, index: list[dict[str, str]], arch: str) -> str:
    """The newest version in `index` that `wanted.version` allows, or an error listing the offer."""
    offers = {s["Version"] for s in index
              if s.get("Package") == wanted.name and s.get("Architecture") in (arch, "all")}
    chosen = Constraint.parse(wanted.version).newest(list(offers))
    if chosen is None:
        available = ", ".join(sorted_versions(list(offers))) or "none"
        raise HpsforgeError(
            f"hpsforge.toml: no version of engine package {wanted.name} in {wanted.suite} satisfies "
            f"{wanted.version!r} (the mirror has: {available})",
            hint="widen engine.packages' version constraint to a series the mirror has, then re-run the freeze",
        )
    return chosen


# --- resolution with mmdebstrap -------------------------------------------------------------------


def require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise HpsforgeError("mmdebstrap is not installed",
                            hint="as root on Debian, `./noxw -s engine` installs the pinned host tools")


def run_mmdebstrap(arguments: list[str], epoch: int | None = None) -> None:
    """mmdebstrap with a C locale (and SOURCE_DATE_EPOCH when building); its log tail on failure."""
    require_mmdebstrap()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    result = subprocess.run(["mmdebstrap", *arguments], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-25:])
        raise HpsforgeError(f"mmdebstrap failed (exit {result.returncode}):\n{tail}")


def _apt_list_name(uri: str, suite: str, component: str, arch: str) -> str:
    """The file name apt gives a downloaded Packages index (its URItoFileName scheme)."""
    stem = uri.split("://", 1)[-1].rstrip("/").replace("/", "_")
    return f"{stem}_dists_{suite}_{component}_binary-{arch}_Packages"


@dataclass(frozen=True)
class Resolution:
    """What apt resolves: a package set on a release, from these sources, checked with this keyring."""

    suite: str
    architecture: str
    include: tuple[str, ...]  # names, or name=version
    sources: tuple[AptSource, ...]
    keyring: Path | None
    snapshot: str
    # Suites apt takes a package from only when it is asked for by version (the newer engine).
    low_priority: tuple[str, ...] = ()


def resolve(request: Resolution, store: ContentStore) -> list[DebPackage]:
    """The closure apt installs for `request` on a minimal system, each file matched to the signed
    index that offered it, checked, and added to the content store (a freeze leaves it warm)."""
    with tempfile.TemporaryDirectory(prefix="resolve-", dir=scratch_dir()) as tmp:
        installed, lists, debs = Path(tmp) / "installed.tsv", Path(tmp) / "lists", Path(tmp) / "debs"
        query = "dpkg-query --admindir=\"$1/var/lib/dpkg\" -W -f='${Package}\\t${Version}\\t${Architecture}\\n'"
        hooks = []
        if request.low_priority:
            pins = "".join(f"Package: *\\nPin: release n={suite}\\nPin-Priority: 100\\n\\n"
                           for suite in request.low_priority)
            hooks.append(f"--setup-hook=mkdir -p \"$1/etc/apt/preferences.d\" && "
                         f"printf '{pins}' > \"$1/etc/apt/preferences.d/hpsforge.pref\"")
        run_mmdebstrap([
            "--variant=minbase", f"--architectures={request.architecture}",
            f"--include={','.join(request.include)}",
            *([f"--keyring={request.keyring}"] if request.keyring else []),
            "--skip=essential/unlink",  # keep every downloaded .deb until the hooks copy them out
            *hooks,
            f"--customize-hook={query} > {shlex.quote(str(installed))}",
            f"--customize-hook=sync-out /var/lib/apt/lists {shlex.quote(str(lists))}",
            f"--customize-hook=sync-out /var/cache/apt/archives {shlex.quote(str(debs))}",
            "--format=null", request.suite, "/dev/null", *(source.line() for source in request.sources),
        ])
        index: dict[tuple[str, str, str], tuple[AptSource, dict[str, str]]] = {}
        for source in reversed(request.sources):  # the first source listed wins a tie
            for component in source.components:
                list_file = lists / _apt_list_name(source.uri, source.suite, component, request.architecture)
                if list_file.exists():
                    for stanza in parse_deb822(list_file.read_text(encoding="utf-8")):
                        index[(stanza["Package"], stanza["Version"], stanza["Architecture"])] = (source, stanza)
        packages = []
        for line in installed.read_text().splitlines():
            key = tuple(line.split("\t"))
            if key not in index:
                raise HpsforgeError(f"installed package {' '.join(key)} is in none of the configured sources")
            source, stanza = index[key]
            packages.append(_locked(source, stanza, debs, request.snapshot, store))
    return sorted(packages, key=lambda p: p.name)


def _locked(source: AptSource, stanza: dict[str, str], debs: Path, snapshot: str, store: ContentStore) -> DebPackage:
    """The lock entry of a file apt downloaded: its hash checked against the signed index."""
    version = stanza["Version"].replace(":", "%3a")
    downloaded = debs / f"{stanza['Package']}_{version}_{stanza['Architecture']}.deb"
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    with open(downloaded, "rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    if sha256.hexdigest() != stanza["SHA256"]:
        raise HashMismatchError(f"{downloaded.name}: apt downloaded bytes that its signed index does not name")
    store.add(downloaded, stanza["SHA256"], downloaded.name)
    return DebPackage(
        name=stanza["Package"], version=stanza["Version"], architecture=stanza["Architecture"],
        uri=source.uri, filename=stanza["Filename"], size=int(stanza["Size"]), sha256=stanza["SHA256"],
        snapshot=f"{snapshot}/file/{sha1.hexdigest()}", priority=stanza.get("Priority", "optional"),
    )


def local_repository(suite: str, architecture: str, packages: list[DebPackage], debs: list[Path],
                     repo: Path) -> None:
    """A flat apt repository holding only the locked files, for mmdebstrap's and apt's file mirrors."""
    repo.mkdir()
    stanzas = []
    for package, stored in zip(packages, debs, strict=True):
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
        f"Suite: {suite}\nCodename: {suite}\n"
        f"Architectures: {architecture} all\n"
        f"SHA256:\n {sha256_bytes(index)} {len(index)} Packages\n"
    )


# --- the engine lock -----------------------------------------------------------------------------


def freeze_engine(config: EngineConfig, store: ContentStore | None = None) -> DebianLock:
    """Pin each declared host package to the newest version its constraint allows (read from the
    mirror's signed indices), then resolve the whole closure a bare host of `host_suite` needs."""
    arch = host_architecture()
    wanted = [*config.packages, *config.tools]
    pins = []
    for suite in sorted({p.suite for p in wanted}):
        print(f"hpsforge: reading the signed {suite} index from {config.mirror}", flush=True)
        index = signed_packages_index(config.mirror, suite, config.keyring, arch)
        pins += [f"{p.name}={pin_host_package(p, index, arch)}" for p in wanted if p.suite == suite]
    host_suites = {source.suite for source in config.host_sources}
    extra = sorted({p.suite for p in wanted} - host_suites)
    print(f"hpsforge: resolving the engine's closure on {config.host_suite} with mmdebstrap", flush=True)
    packages = resolve(Resolution(
        suite=config.host_suite, architecture=arch, include=tuple(sorted(pins)),
        sources=(*config.host_sources, *(AptSource(uri=config.mirror, suite=suite) for suite in extra)),
        keyring=config.keyring, snapshot=config.snapshot, low_priority=tuple(extra),
    ), store or ContentStore())
    return DebianLock(input_sha256=config.declaration_sha256(), packages=packages)

