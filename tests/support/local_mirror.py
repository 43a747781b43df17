"""A local stand-in for deb.debian.org holding exactly the .debs of the committed engine and base
locks, signed with a key the test made, and a copy of hpsforge.toml that points at it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hpsforge import debian
from hpsforge.config import PROJECT_ROOT, load_config
from hpsforge.store import ContentStore
from tests.support.debian_repository import DebianRepository, HttpStandIn, SigningKey, archive_of

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


def locked_packages() -> list[debian.DebPackage]:
    """Every .deb of lock/engine.lock.json and lock/debian.lock.json, once, fetched into the store."""
    store, seen = ContentStore(), {}
    for path in (debian.ENGINE_LOCK, debian.BASE_LOCK):
        lock = debian.DebianLock.read(path)
        lock.fetch(store)
        for package in lock.packages:
            seen.setdefault(package.sha256, package)
    return list(seen.values())


@contextlib.contextmanager
def local_mirror(root: Path, key: SigningKey) -> Iterator[LocalMirror]:
    config = load_config()
    # The engine's own packages come from their declared suite (trixie); the rest by archive.
    from_suite = {p.name: p.suite for p in [*config.engine.packages, *config.engine.tools]
                  if p.suite not in {s.suite for s in config.engine.host_sources}}
    by_archive = {"debian": "bookworm", "debian-security": "bookworm-security"}
    repository = DebianRepository(root / "mirror", key)
    repository.add_suite("debian", "bookworm-updates")
    store = ContentStore()
    for package in locked_packages():
        suite = from_suite.get(package.name) or by_archive[archive_of(package.uri)]
        repository.add(archive_of(package.uri), suite, store.path(package.sha256), package.filename,
                       {"Priority": package.priority})
        if suite == "bookworm-security":  # bookworm itself still lists the release's version
            repository.add_older_version("debian", "bookworm", store.path(package.sha256), {"Priority": package.priority})
    repository.publish()
    with HttpStandIn(root / "mirror") as server:
        text = (PROJECT_ROOT / "hpsforge.toml").read_text(encoding="utf-8")
        text = text.replace(UPSTREAM, server.url).replace(UPSTREAM_KEYRING, str(key.keyring))
        text = text.replace("[base]\n", f'[base]\nkeyring = "{key.keyring}"\n', 1)
        (root / "hpsforge.toml").write_text(text, encoding="utf-8")
        yield LocalMirror(server.url, root / "hpsforge.toml", server)
