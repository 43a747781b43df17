"""Debian package locks: the exact .deb files a package set resolved to.

Two locks share one shape (DebianLock): lock/engine.lock.json, the whole closure a bare host
installs to bring up the engine (and the host tools tests use), and lock/debian.lock.json, the
package closure of the base image. Each records, per file, its mirror URL and the
snapshot.debian.org URL that keeps serving the same bytes after the mirror drops them
(freeze/apt.py resolves them; inputs/debs.py fetches them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from debian.deb822 import Deb822
from pydantic import StringConstraints, ValidationError

from hpsforge.core.config import DebianName, DebianVersion, Model, Sha256Hex
from hpsforge.core.errors import StaleLockError
from hpsforge.core.files import atomic_write_text, canonical_json
from hpsforge.core.settings import settings

FREEZE_COMMAND = "nox -s freeze"


def engine_lock_path() -> Path:
    """lock/engine.lock.json: the closure a bare host installs to bring up the engine."""
    return settings().lock_dir / "engine.lock.json"


def base_lock_path() -> Path:
    """lock/debian.lock.json: the base image's package closure."""
    return settings().lock_dir / "debian.lock.json"


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
    def read(cls, path: Path) -> DebianLock:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StaleLockError(f"{path}: lock file missing", hint=f"create it with `{FREEZE_COMMAND}`") from None
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


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Split a Packages/Release/status file into stanzas of (field -> value), with python-debian."""
    return [
        dict(stanza) for stanza in Deb822.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False) if stanza
    ]
