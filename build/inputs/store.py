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
from typing import BinaryIO

from hpsforge.core.errors import HashMismatchError, InputUnavailableError
from hpsforge.core.files import CHUNK, sha256_file
from hpsforge.core.settings import settings

DOWNLOAD_TIMEOUT_S = 60


def cache_root() -> Path:
    """$HPSFORGE_CACHE, else $XDG_CACHE_HOME/hpsforge, else ~/.cache/hpsforge (core/settings.py)."""
    return settings().cache


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
            raise InputUnavailableError(
                f"{label}: {path} is not in the store", hint="run the command again to download it"
            )
        actual = sha256_file(path)
        if actual != sha256:
            raise HashMismatchError(
                f"{label}: stored file {path} does not match its lock\n"
                f"    expected sha256 {sha256}\n    actual   sha256 {actual}",
                hint=f"delete {path} and run the command again to download it afresh",
            )
        return path

    def add(self, source: Path, sha256: str, label: str) -> Path:
        """Copy `source` into the store once its bytes are proven to hash to `sha256`."""
        target = self.path(sha256)
        if target.exists():
            return self.verified(sha256, label)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".import.", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, partial)
            actual = sha256_file(Path(partial))  # the copy is what enters the store: hash the copy
            if actual != sha256:
                raise HashMismatchError(
                    f"{label}: {source} does not match its sha256\n"
                    f"    expected sha256 {sha256}\n    actual   sha256 {actual}"
                )
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return target

    def fetch(
        self, sources: str | list[tuple[str, str]], sha256: str, size: int | None, label: str, relock: str
    ) -> Path:
        """Return the verified file for `sha256`; if absent, take it from the first of `sources`
        ((place, url) pairs, tried in order) that serves it, then from the input archives named
        by $HPSFORGE_ARCHIVE. Bytes that differ from the lock are refused wherever they come from."""
        if self.path(sha256).exists():
            return self.verified(sha256, label)
        places = [("source", sources)] if isinstance(sources, str) else list(sources)
        tried = []
        for place, url in places:
            try:
                return self._download(url, sha256, size, label, relock)
            except _Unreachable as failure:
                tried.append(f"{place:9} {url}: {failure}")
        for archive in archive_dirs():
            candidate = archive / "files" / sha256
            if candidate.is_file():
                return self.add(candidate, sha256, f"{label} (from the input archive {archive})")
            tried.append(f"{'archive':9} {archive}: does not hold it")
        if not archive_dirs():
            tried.append(f"{'archive':9} none given (HPSFORGE_ARCHIVE is unset)")
        raise InputUnavailableError(
            f"{label} (sha256 {sha256}) cannot be had from any place:\n    " + "\n    ".join(tried),
            hint=f"import an input archive that holds it (`nox -s archive -- import DIR`, or set "
            f"HPSFORGE_ARCHIVE=DIR), or re-lock to what upstream serves now with `{relock}`",
        )

    def _download(self, url: str, sha256: str, size: int | None, label: str, relock: str) -> Path:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".download.", dir=target.parent)
        try:
            digest, received = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, _open(url) as response:
                try:
                    while chunk := response.read(CHUNK):
                        digest.update(chunk)
                        received += len(chunk)
                        out.write(chunk)
                except (OSError, http.client.HTTPException) as error:
                    raise _Unreachable(f"the download broke off after {received} bytes ({error})") from None
            if digest.hexdigest() != sha256 or (size is not None and received != size):
                raise HashMismatchError(
                    f"{label}: download from {url} does not match its lock\n"
                    f"    expected sha256 {sha256} ({size} bytes)\n"
                    f"    actual   sha256 {digest.hexdigest()} ({received} bytes)",
                    hint="the source changed under the lock, or someone tampered with it; "
                    f"re-lock with `{relock}` only if the new file is trusted",
                )
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return target


class _Unreachable(Exception):
    """One place did not serve the file: the next is tried."""


def archive_dirs() -> list[Path]:
    """Input archive folders (written by `nox -s archive -- export`; $HPSFORGE_ARCHIVE) that missing
    files are taken from."""
    return list(settings().archives)


def _open(url: str) -> BinaryIO:
    try:
        # An HTTPResponse, or an addinfourl for file://: both binary streams (typeshed says Any).
        response: BinaryIO = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
        return response
    except urllib.error.HTTPError as error:
        error.close()  # it holds the refusal's connection
        reason = "gone (HTTP {})" if error.code in (404, 410) else "refused (HTTP {})"
        raise _Unreachable(reason.format(error.code)) from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise _Unreachable(f"unreachable ({getattr(error, 'reason', error)})") from None


def download_bytes(url: str, label: str) -> bytes:
    """Small index files (InRelease, Packages.xz) fetched into memory."""
    try:
        with _open(url) as response:
            return response.read()
    except _Unreachable as failure:
        raise InputUnavailableError(f"{label}: {url} is {failure}") from None
