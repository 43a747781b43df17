"""Persistent face galleries: one file per index key in the server's state directory.

The four endpoints run in separate processes. Writers (add, remove) take an fcntl lock per index
for their read-modify-write and replace the file atomically (temp file, fsync, rename, fsync of
the directory), so a reader in any process sees either the old or the new file, never a partial
one, and needs no lock.

File format, version 1:
  line 1   b"HPSFACE1 <sha256 hex of everything after line 1>\n"
  line 2   JSON {"dim": 128, "nextId": n, "ids": [...], "labels": [...]}
  rest     float32 little-endian embeddings, one row per id
The checksum both detects damage and identifies the content, which keeps reader caches honest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

MAGIC = b"HPSFACE1"
SUFFIX = ".face"
KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
CACHE_SIZE = 16  # parsed galleries kept per process


class GalleryError(Exception):
    pass


class IndexNotFound(GalleryError):
    pass


class IndexCorrupt(GalleryError):
    pass


class UnknownIds(GalleryError):
    pass


@dataclass(frozen=True)
class Gallery:
    ids: np.ndarray  # int64 (n,): ids are never reused within an index
    labels: tuple[str, ...]
    embeddings: np.ndarray  # float32 (n, dim)
    next_id: int

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, threshold: float, topk: int) -> list[tuple[str, float]]:
        """Best (label, score) per label, score = 1 - euclidean distance, at least `threshold`."""
        if not len(self):
            return []
        scores = 1.0 - np.linalg.norm(self.embeddings - query, axis=1)
        best: dict[str, float] = {}
        for row in np.argsort(-scores, kind="stable"):
            if scores[row] < threshold or len(best) == topk:
                break
            best.setdefault(self.labels[row], float(scores[row]))
        return list(best.items())


def _rows(labels: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"{len(labels)} labels need a ({len(labels)}, dim) embedding array, "
                         f"not {embeddings.shape}")
    return embeddings


class GalleryStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, tuple[bytes, Gallery]] = OrderedDict()

    def create(self, labels: Sequence[str], embeddings: np.ndarray) -> tuple[str, Gallery]:
        """A new index holding the given faces, with ids 0..n-1 in order."""
        key = uuid.uuid4().hex
        embeddings = _rows(labels, embeddings)
        count = len(labels)
        gallery = Gallery(np.arange(count, dtype=np.int64), tuple(labels), embeddings, count)
        self._write(self._path(key), gallery)
        return key, gallery

    def add(self, key: str, labels: Sequence[str], embeddings: np.ndarray) -> tuple[list[int], Gallery]:
        """Appends faces; returns their new ids (continuing after the highest id ever given)."""
        with self._locked(key) as path:
            old = self._read(key, path)
            embeddings = _rows(labels, embeddings)
            if embeddings.shape[1] != old.embeddings.shape[1]:
                raise GalleryError(f"face index {key} holds {old.embeddings.shape[1]}-d embeddings, "
                                   f"not {embeddings.shape[1]}-d")
            ids = np.arange(old.next_id, old.next_id + len(labels), dtype=np.int64)
            new = Gallery(np.concatenate([old.ids, ids]), old.labels + tuple(labels),
                          np.concatenate([old.embeddings, embeddings]), old.next_id + len(labels))
            self._write(path, new)
        return ids.tolist(), new

    def remove(self, key: str, ids: Sequence[int]) -> Gallery:
        """Drops the given ids; all must exist, else nothing is removed."""
        with self._locked(key) as path:
            old = self._read(key, path)
            unknown = sorted(set(ids) - set(old.ids.tolist()))
            if unknown:
                raise UnknownIds(f"face index {key} has no id {', '.join(map(str, unknown))}")
            keep = ~np.isin(old.ids, list(ids))
            new = Gallery(old.ids[keep], tuple(label for label, kept in zip(old.labels, keep) if kept),
                          old.embeddings[keep], old.next_id)
            self._write(path, new)
        return new

    def load(self, key: str) -> Gallery:
        """The current content of an index, lock-free; parsed only when it changed."""
        path = self._path(key)
        try:
            with open(path, "rb") as stream:
                head = stream.readline(len(MAGIC) + 80)
                # The size too, so a truncated file is noticed even when its header is intact.
                stamp = head + b"%d" % os.fstat(stream.fileno()).st_size
                cached = self._cache.get(key)
                if cached is not None and cached[0] == stamp:
                    self._cache.move_to_end(key)
                    return cached[1]
                gallery = self._parse(key, head, stream.read())
        except FileNotFoundError:
            raise IndexNotFound(f"no face index with key {key!r}") from None
        self._cache[key] = (stamp, gallery)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return gallery

    def _path(self, key: str) -> Path:
        # The key names a file: anything but our own 32 hex digits is refused, never joined.
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise IndexNotFound(f"no face index with key {key!r}")
        return self.root / f"{key}{SUFFIX}"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.exists():  # checked first so unknown keys leave no lock files behind
            raise IndexNotFound(f"no face index with key {key!r}")
        fd = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            os.close(fd)  # releases the lock

    def _read(self, key: str, path: Path) -> Gallery:
        try:
            with open(path, "rb") as stream:
                head = stream.readline(len(MAGIC) + 80)
                return self._parse(key, head, stream.read())
        except FileNotFoundError:
            raise IndexNotFound(f"no face index with key {key!r}") from None

    @staticmethod
    def _parse(key: str, head: bytes, body: bytes) -> Gallery:
        def corrupt(why: str) -> IndexCorrupt:
            return IndexCorrupt(f"face index {key} is unreadable ({why}); "
                                "build a new one with face-recognition-index-build")

        parts = head.rstrip(b"\n").split(b" ")
        if not head.endswith(b"\n") or len(parts) != 2 or parts[0] != MAGIC:
            raise corrupt("not a face index file of a known version")
        if hashlib.sha256(body).hexdigest().encode() != parts[1]:
            raise corrupt("checksum mismatch: the file is truncated or damaged")
        meta_line, _, blob = body.partition(b"\n")
        try:
            meta = json.loads(meta_line)
            ids = np.asarray(meta["ids"], dtype=np.int64).reshape(-1)
            labels = tuple(meta["labels"])
            dim, next_id = int(meta["dim"]), int(meta["nextId"])
            embeddings = np.frombuffer(blob, dtype="<f4").reshape(len(ids), dim)
        except (ValueError, KeyError, TypeError) as error:
            raise corrupt(f"bad content: {error}") from None
        if (len(labels) != len(ids) or not all(isinstance(label, str) for label in labels)
                or len(set(ids.tolist())) != len(ids) or (len(ids) and ids.max() >= next_id)):
            raise corrupt("inconsistent ids or labels")
        return Gallery(ids, labels, embeddings, next_id)

    def _write(self, path: Path, gallery: Gallery) -> None:
        meta = {"dim": gallery.embeddings.shape[1],
                "nextId": gallery.next_id, "ids": gallery.ids.tolist(), "labels": list(gallery.labels)}
        body = json.dumps(meta).encode() + b"\n" + gallery.embeddings.astype("<f4").tobytes()
        head = MAGIC + b" " + hashlib.sha256(body).hexdigest().encode() + b"\n"
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(head + body)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        # The rename itself must reach the disk for the index to survive a power cut.
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
