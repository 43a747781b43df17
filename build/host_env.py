"""The host environment's lock (lock/host-requirements.txt), which ./noxw installs into .venv."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hpsforge import requirements_lock
from hpsforge.config import LOCK_DIR, PROJECT_ROOT
from hpsforge.errors import HpsforgeError, InputUnavailableError
from hpsforge.files import sha256_file
from hpsforge.store import ContentStore
from hpsforge.wheelhouse import WheelhouseManifest, read_wheelset, store_downloads, write_wheelset

HOST_LOCK = LOCK_DIR / "host-requirements.txt"
# The host's own pip settings (local wheel folders, extra indexes, caps) must not shape the lock.
IGNORED_PIP_SETTINGS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")


def relock(upgrade: bool = False) -> None:
    """Compile pyproject.toml's pinned dependencies (and the test extra) with hashes."""
    env = {key: value for key, value in os.environ.items() if key not in IGNORED_PIP_SETTINGS}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [
        str(Path(sys.executable).parent / "pip-compile"), "--quiet", "--generate-hashes", "--allow-unsafe",
        "--strip-extras", "--extra", "test", "--no-emit-index-url", "--no-emit-find-links",
        "--output-file", str(HOST_LOCK.relative_to(PROJECT_ROOT)), "pyproject.toml",
        *(["--upgrade"] if upgrade else []),
    ]
    if subprocess.run(command, cwd=PROJECT_ROOT, env=env).returncode != 0:
        raise HpsforgeError("pip-compile could not lock the host environment (output above)")
    print(f"hpsforge: {HOST_LOCK.relative_to(PROJECT_ROOT)} written; ./noxw reinstalls .venv on its next run",
          flush=True)


def wheelset(store: ContentStore) -> WheelhouseManifest:
    """The wheels ./noxw installs on this host (its Python and platform), downloaded here if unknown:
    an input archive carries them, so a host with no network sets up the same environment."""
    lock_sha256 = sha256_file(HOST_LOCK)
    known = read_wheelset(lock_sha256)
    if known is not None and all(store.path(w.sha256).exists() for w in known.wheels):
        return known
    lock = requirements_lock.read(HOST_LOCK)
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="host-wheels-", dir=store.root.parent) as tmp:
        print(f"hpsforge: downloading the {len(lock.requirements)} wheels of {HOST_LOCK.name}", flush=True)
        env = {key: value for key, value in os.environ.items() if key not in IGNORED_PIP_SETTINGS}
        env["PIP_CONFIG_FILE"] = os.devnull
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
                                 ":all:", "--require-hashes", "--dest", tmp, "-r", str(HOST_LOCK)],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise InputUnavailableError(f"pip could not download the host environment's wheels:\n"
                                        f"{result.stderr.strip()[-2000:]}")
        wheels = store_downloads(lock, Path(tmp), store)
    manifest = WheelhouseManifest(target="host", lock_sha256=lock_sha256, wheels=wheels)
    write_wheelset(manifest)
    return manifest
