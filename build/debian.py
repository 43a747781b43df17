"""Debian package locks: parsing apt indices, resolving pins to exact files, fetching them.

Two locks share one shape (DebianLock): lock/engine.lock.json, the host packages that bring up
the engine, and lock/debian.lock.json, the full package closure of the base image.
"""

from __future__ import annotations

import lzma
import re
import subprocess
from pathlib import Path

from typing import Annotated

from pydantic import StringConstraints, ValidationError

from hpsforge.config import LOCK_DIR, DebianName, DebianVersion, EngineConfig, HostPackage, Model, Sha256Hex
from hpsforge.debversion import Constraint, sorted_versions
from hpsforge.errors import HpsforgeError
from hpsforge.files import atomic_write_text, canonical_json, sha256_bytes
from hpsforge.store import ContentStore, download_bytes

ENGINE_LOCK = LOCK_DIR / "engine.lock.json"
BASE_LOCK = LOCK_DIR / "debian.lock.json"
FREEZE_COMMAND = "nox -s freeze"

class DebPackage(Model):
    """One exact .deb: enough to download it and prove it is the one that was locked."""

    name: DebianName
    version: DebianVersion
    architecture: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
    uri: str
    filename: str
    size: int
    sha256: Sha256Hex

    @property
    def url(self) -> str:
        return f"{self.uri}/{self.filename}"

    @property
    def deb_name(self) -> str:
        """The conventional file name, as apt writes it (epoch colon escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"


class DebianLock(Model):
    """A resolved package set and the hash of the declaration it was resolved from."""

    input_sha256: Sha256Hex
    packages: list[DebPackage]

    @classmethod
    def read(cls, path: Path) -> "DebianLock":
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HpsforgeError(
                f"{path}: lock file missing", hint=f"create it with `{FREEZE_COMMAND}`"
            ) from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise HpsforgeError(
                f"{path}: malformed lock ({where}: {first['msg']})",
                hint=f"restore it from git or rewrite it with `{FREEZE_COMMAND}`",
            ) from None

    def canonical_text(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def write(self, path: Path) -> bool:
        return atomic_write_text(path, self.canonical_text())

    def require_fresh(self, path: Path, declared_sha256: str) -> None:
        if self.input_sha256 != declared_sha256:
            raise HpsforgeError(
                f"{path} is stale: hpsforge.toml changed since it was locked "
                f"(locked from {self.input_sha256[:12]}, declared now {declared_sha256[:12]})",
                hint=f"re-lock with `{FREEZE_COMMAND}`",
            )

    def fetch(self, store: ContentStore) -> list[Path]:
        """Every locked .deb from the store (downloaded if absent), each re-hashed now."""
        paths = []
        missing = [p for p in self.packages if not store.path(p.sha256).exists()]
        if missing:
            total = sum(p.size for p in missing) / 1e6
            print(f"hpsforge: downloading {len(missing)} .debs ({total:.1f} MB)", flush=True)
        for package in self.packages:
            paths.append(
                store.fetch(package.url, package.sha256, package.size, package.deb_name, FREEZE_COMMAND)
            )
        return paths


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Split a Packages/Release/status file into stanzas of (field -> value)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


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
        raise HpsforgeError(
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
        raise HpsforgeError(f"{mirror} {suite}: its InRelease lists no {member}")
    expected, size = table[member]
    data = download_bytes(f"{mirror}/dists/{suite}/{member}", f"{suite} {member}")
    if sha256_bytes(data) != expected or len(data) != size:
        raise HpsforgeError(f"{mirror} {suite} {member}: bytes do not match the signed InRelease")
    return parse_deb822(lzma.decompress(data).decode("utf-8"))


def freeze_engine(config: EngineConfig) -> DebianLock:
    """Pin each host package to the newest version its constraint allows, via the mirror's signed indices."""
    arch = host_architecture()
    packages = []
    for suite in sorted({p.suite for p in config.packages}):
        print(f"hpsforge: reading the signed {suite} index from {config.mirror}", flush=True)
        index = signed_packages_index(config.mirror, suite, config.keyring, arch)
        for wanted in (p for p in config.packages if p.suite == suite):
            packages.append(pin_host_package(wanted, index, arch, config.mirror))
    return DebianLock(
        input_sha256=config.declaration_sha256(),
        packages=sorted(packages, key=lambda p: p.name),
    )


def pin_host_package(wanted: HostPackage, index: list[dict[str, str]], arch: str, uri: str) -> DebPackage:
    """The newest file of `index` whose version `wanted.version` allows, or an error listing the offer."""
    offers = {s["Version"]: s for s in index
              if s.get("Package") == wanted.name and s.get("Architecture") in (arch, "all")}
    chosen = Constraint.parse(wanted.version).newest(list(offers))
    if chosen is None:
        available = ", ".join(sorted_versions(list(offers))) or "none"
        raise HpsforgeError(
            f"hpsforge.toml: no version of engine package {wanted.name} in {wanted.suite} satisfies "
            f"{wanted.version!r} (the mirror has: {available})",
            hint="widen engine.packages' version constraint to a series the mirror has, then re-run the freeze",
        )
    return _locked(offers[chosen], uri)


def _locked(stanza: dict[str, str], uri: str) -> DebPackage:
    return DebPackage(
        name=stanza["Package"],
        version=stanza["Version"],
        architecture=stanza["Architecture"],
        uri=uri,
        filename=stanza["Filename"],
        size=int(stanza["Size"]),
        sha256=stanza["SHA256"],
    )
