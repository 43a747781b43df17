"""A local stand-in for deb.debian.org holding exactly the .debs of a committed lock, signed with a
key the test made, and a copy of hpsforge.toml that points at it.

One lock per mirror: each lock was resolved from the mirror as it was on its freeze's day, so a
mirror of exactly its files resolves to it again; two locks frozen on different days may hold two
versions of one package, and a mirror of both would offer the newer to either."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core.config import load_config
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import debian
from tests.support.debian_repository import (
    DebianRepository,
    HttpStandIn,
    SigningKey,
    archive_of,
)

UPSTREAM = "http://deb.debian.org"
UPSTREAM_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class LocalMirror:
    url: str
    config: Path  # hpsforge.toml, pointed at the mirror and its key
    server: HttpStandIn

    def upstream(self, package: debian.DebPackage) -> debian.DebPackage:
        """The package as the real mirror names it: a freeze here equals one there."""
        return package.model_copy(update={"uri": package.uri.replace(self.url, UPSTREAM)})


def locked_packages(lock_path: Path) -> list[debian.DebPackage]:
    """Every .deb of the lock, fetched into the store."""
    lock = debian.DebianLock.read(lock_path)
    debs.fetch(lock, ContentStore())
    return lock.packages


@contextlib.contextmanager
def local_mirror(root: Path, key: SigningKey, lock_path: Path) -> Iterator[LocalMirror]:
    config = load_config()
    # The engine's own packages come from their declared suite (trixie); the rest by archive.
    from_suite = {
        p.name: p.suite
        for p in [*config.engine.packages, *config.engine.tools]
        if p.suite not in {s.suite for s in config.engine.host_sources}
    }
    by_archive = {"debian": "bookworm", "debian-security": "bookworm-security"}
    repository = DebianRepository(root / "mirror", key)
    repository.add_suite("debian", "bookworm-updates")
    store = ContentStore()
    for package in locked_packages(lock_path):
        suite = from_suite.get(package.name) or by_archive[archive_of(package.uri)]
        repository.add(
            archive_of(package.uri), suite, store.path(package.sha256), package.filename, {"Priority": package.priority}
        )
        if suite == "bookworm-security":  # bookworm itself still lists the release's version
            repository.add_older_version(
                "debian", "bookworm", store.path(package.sha256), {"Priority": package.priority}
            )
    repository.publish()
    with HttpStandIn(root / "mirror") as server:
        text = (PROJECT_ROOT / "hpsforge.toml").read_text(encoding="utf-8")
        text = text.replace(UPSTREAM, server.url).replace(UPSTREAM_KEYRING, str(key.keyring))
        text = text.replace("[base]\n", f'[base]\nkeyring = "{key.keyring}"\n', 1)
        (root / "hpsforge.toml").write_text(text, encoding="utf-8")
        yield LocalMirror(server.url, root / "hpsforge.toml", server)
