"""Debian package sets resolved to exact .deb files: apt (through mmdebstrap) against the mirror,
every index proven by its gpgv-checked InRelease; the engine lock's pins from the signed indices."""

from __future__ import annotations

import hashlib
import lzma
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.config import AptSource, BaseConfig, EngineConfig, HostPackage
from hpsforge.core.debversion import Constraint, sorted_versions
from hpsforge.core.errors import HashMismatchError, HpsforgeError, InputUnavailableError
from hpsforge.core.files import sha256_bytes
from hpsforge.images.engine import host_architecture
from hpsforge.images.mmdebstrap import run_mmdebstrap
from hpsforge.inputs.store import ContentStore, download_bytes, scratch_dir
from hpsforge.locks.debian import DebianLock, DebPackage, parse_deb822

GPGV_TIMEOUT_S = 60  # checks one signature of a few hundred kB


def signed_release(mirror: str, suite: str, keyring: Path) -> dict[str, tuple[str, int]]:
    """Verify a suite's InRelease with gpgv; return its SHA256 table (path -> (hash, size))."""
    url = f"{mirror}/dists/{suite}/InRelease"
    signed = download_bytes(url, f"{suite} InRelease")
    verify = proc.run(
        ["gpgv", "--keyring", keyring, "--output", "-", "-"],
        input=signed,
        timeout=GPGV_TIMEOUT_S,
        what=f"{url}: signature does not verify against {keyring}",
        error=HashMismatchError,
    )
    release = parse_deb822(verify.stdout_bytes.decode())[0]
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
    offers = {s["Version"] for s in index if s.get("Package") == wanted.name and s.get("Architecture") in (arch, "all")}
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
            pins = "".join(
                f"Package: *\\nPin: release n={suite}\\nPin-Priority: 100\\n\\n" for suite in request.low_priority
            )
            hooks.append(
                f'--setup-hook=mkdir -p "$1/etc/apt/preferences.d" && '
                f"printf '{pins}' > \"$1/etc/apt/preferences.d/hpsforge.pref\""
            )
        run_mmdebstrap(
            [
                "--variant=minbase",
                f"--architectures={request.architecture}",
                f"--include={','.join(request.include)}",
                *([f"--keyring={request.keyring}"] if request.keyring else []),
                "--skip=essential/unlink",  # keep every downloaded .deb until the hooks copy them out
                *hooks,
                f"--customize-hook={query} > {shlex.quote(str(installed))}",
                f"--customize-hook=sync-out /var/lib/apt/lists {shlex.quote(str(lists))}",
                f"--customize-hook=sync-out /var/cache/apt/archives {shlex.quote(str(debs))}",
                "--format=null",
                request.suite,
                "/dev/null",
                *(source.line() for source in request.sources),
            ]
        )
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
        name=stanza["Package"],
        version=stanza["Version"],
        architecture=stanza["Architecture"],
        uri=source.uri,
        filename=stanza["Filename"],
        size=int(stanza["Size"]),
        sha256=stanza["SHA256"],
        snapshot=f"{snapshot}/file/{sha1.hexdigest()}",
        priority=stanza.get("Priority", "optional"),
    )


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
    packages = resolve(
        Resolution(
            suite=config.host_suite,
            architecture=arch,
            include=tuple(sorted(pins)),
            sources=(*config.host_sources, *(AptSource(uri=config.mirror, suite=suite) for suite in extra)),
            keyring=config.keyring,
            snapshot=config.snapshot,
            low_priority=tuple(extra),
        ),
        store or ContentStore(),
    )
    return DebianLock(input_sha256=config.declaration_sha256(), packages=packages)


def freeze_base(config: BaseConfig, store: ContentStore | None = None) -> DebianLock:
    """Resolve the base image's declared package set, and everything it pulls in, to exact .deb files."""
    print(f"hpsforge: resolving the base package set on {config.suite} with mmdebstrap", flush=True)
    packages = resolve(
        Resolution(
            suite=config.suite,
            architecture=config.architecture,
            include=tuple(config.packages),
            sources=tuple(config.sources),
            keyring=config.keyring,
            snapshot=config.snapshot,
        ),
        store or ContentStore(),
    )
    return DebianLock(input_sha256=config.declaration_sha256(), packages=packages)
