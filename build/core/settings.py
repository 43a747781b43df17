"""Where hpsforge reads and writes: every `HPSFORGE_*` variable, read when asked, in one model.

Nothing is read at import: a test (or a repro into a fresh store) sets a variable and the next
call sees it. The project's own folders derive from where this package lives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGE_PYTHON = "3.11"  # Debian bookworm's python3, the interpreter of every image


class Settings(BaseModel):
    """The paths of one command's run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # HPSFORGE_PROJECT: the project folder (hpsforge.toml, lock/, pipelines/, dockerfiles/, sdk/);
    # default the checkout this package lives in.
    root: Path
    # HPSFORGE_CONFIG: another hpsforge.toml (experiments, tests); default the project's own.
    config_file: Path
    # HPSFORGE_LOCK_DIR: another folder of locks (a test freezing against a local mirror).
    lock_dir: Path
    # HPSFORGE_IMAGES_RECORD: where built digests are recorded (the test suite keeps its own copy).
    images_record: Path
    # HPSFORGE_CACHE, else $XDG_CACHE_HOME/hpsforge, else ~/.cache/hpsforge: the content store and caches.
    cache: Path
    # HPSFORGE_BLOBS_DIR: where vendor blobs are found (default vendor_blobs/files).
    blobs_dir: Path
    # HPSFORGE_BLOB_MANIFEST: another blob manifest (the test suite's stand-ins).
    blob_manifest: Path
    # HPSFORGE_ARCHIVE: input archive folders (os.pathsep-separated) missing files are taken from.
    archives: tuple[Path, ...]
    # HPSFORGE_ECHO=1: print every program hpsforge runs (core/proc.py) before it starts.
    echo: bool = False
    # HPSFORGE_SIGNING_PASSPHRASE: the release key's passphrase (else --passphrase-file); never logged.
    signing_passphrase: SecretStr | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        root = Path(env.get("HPSFORGE_PROJECT") or PROJECT_ROOT)
        lock_dir = Path(env.get("HPSFORGE_LOCK_DIR") or root / "lock")
        xdg = env.get("XDG_CACHE_HOME")
        cache = (
            Path(env["HPSFORGE_CACHE"])
            if env.get("HPSFORGE_CACHE")
            else ((Path(xdg) if xdg else Path.home() / ".cache") / "hpsforge")
        )
        return cls(
            root=root,
            config_file=Path(env.get("HPSFORGE_CONFIG") or root / "hpsforge.toml"),
            lock_dir=lock_dir,
            images_record=Path(env.get("HPSFORGE_IMAGES_RECORD") or lock_dir / "images.lock.json"),
            cache=cache,
            blobs_dir=Path(env.get("HPSFORGE_BLOBS_DIR") or root / "vendor_blobs" / "files"),
            blob_manifest=Path(env.get("HPSFORGE_BLOB_MANIFEST") or root / "vendor_blobs" / "manifest.toml"),
            archives=tuple(Path(part) for part in env.get("HPSFORGE_ARCHIVE", "").split(os.pathsep) if part),
            echo=env.get("HPSFORGE_ECHO", "").strip().lower() not in ("", "0", "false", "no", "off"),
            signing_passphrase=SecretStr(env["HPSFORGE_SIGNING_PASSPHRASE"])
            if env.get("HPSFORGE_SIGNING_PASSPHRASE")
            else None,
        )

    @property
    def dockerfiles(self) -> Path:
        return self.root / "dockerfiles"

    @property
    def pipelines_dir(self) -> Path:
        return self.root / "pipelines"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def requirements_dir(self) -> Path:
        return self.lock_dir / "requirements"

    def shown(self, path: Path) -> str:
        """A path as a user reads it: relative to the project when inside it."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def settings() -> Settings:
    """This moment's settings (the environment is read at every call)."""
    return Settings.from_environment()


@contextmanager
def cache_override(cache: Path) -> Iterator[None]:
    """Run a block with another content store and cache (a repro from nothing); restored after."""
    previous = os.environ.get("HPSFORGE_CACHE")
    os.environ["HPSFORGE_CACHE"] = str(cache)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HPSFORGE_CACHE", None)
        else:
            os.environ["HPSFORGE_CACHE"] = previous
