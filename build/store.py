"""The content-addressed store: every downloaded input lives under its sha256, checked on use."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from hpsforge.errors import HpsforgeError
from hpsforge.files import CHUNK, sha256_file

DOWNLOAD_TIMEOUT_S = 60


def cache_root() -> Path:
    """$HPSFORGE_CACHE, else $XDG_CACHE_HOME/hpsforge, else ~/.cache/hpsforge."""
    if explicit := os.environ.get("HPSFORGE_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hpsforge"


def scratch_dir() -> Path:
    """Where build steps make their temporary folders: beside the store, so links and renames work."""
    path = cache_root() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def link_or_copy(source: Path, destination: Path) -> None:
    """A hard link when source and destination share a filesystem, a copy otherwise."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


class ContentStore:
    """Files named by their sha256; a file only enters the store once its hash is proven."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "sha256"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def verified(self, sha256: str, label: str) -> Path:
        """The stored file for `sha256`, re-hashed now: a file changed on disk is refused."""
        path = self.path(sha256)
        if not path.exists():
            raise HpsforgeError(f"{label}: {path} is not in the store", hint="run the command again to download it")
        actual = sha256_file(path)
        if actual != sha256:
            raise HpsforgeError(
                f"{label}: stored file {path} does not match its lock\n"
                f"    expected sha256 {sha256}\n    actual   sha256 {actual}",
                hint=f"delete {path} and run the command again to download it afresh",
            )
        return path

    def fetch(self, url: str, sha256: str, size: int | None, label: str, relock: str) -> Path:
        """Return the verified file for `sha256`, downloading it from `url` if absent."""
        if self.path(sha256).exists():
            return self.verified(sha256, label)
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".download.", dir=target.parent)
        try:
            digest, received = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, _open_url(url, label, relock) as response:
                try:
                    while chunk := response.read(CHUNK):
                        digest.update(chunk)
                        received += len(chunk)
                        out.write(chunk)
                except (OSError, http.client.HTTPException) as error:
                    raise HpsforgeError(f"{label}: download from {url} broke off after {received} bytes: "
                                        f"{error}", hint="run the command again") from None
            if digest.hexdigest() != sha256 or (size is not None and received != size):
                raise HpsforgeError(
                    f"{label}: download from {url} does not match its lock\n"
                    f"    expected sha256 {sha256} ({size} bytes)\n"
                    f"    actual   sha256 {digest.hexdigest()} ({received} bytes)",
                    hint=f"the source changed under the lock; re-lock with `{relock}`",
                )
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return target


def _open_url(url: str, label: str, relock: str):
    try:
        return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise HpsforgeError(
                f"{label}: {url} is gone from the mirror (HTTP {error.code}); "
                "Debian keeps only current versions and snapshot.debian.org is unreachable here",
                hint=f"re-lock to the versions the mirror has now with `{relock}`",
            ) from None
        raise HpsforgeError(f"{label}: download of {url} failed: HTTP {error.code}") from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise HpsforgeError(f"{label}: cannot reach {url}: {error}") from None


def download_bytes(url: str, label: str) -> bytes:
    """Small index files (InRelease, Packages.xz) fetched into memory."""
    with _open_url(url, label, relock="nox -s freeze") as response:
        return response.read()
