"""A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

`local_registry(root)` starts one on a free port with filesystem storage under `root`, waits
until `GET /v2/` answers and stops it on leaving the block (also if it was stopped earlier).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 15
# htpasswd line for archive-user / archive-secret (bcrypt, cost 4 so that each request stays fast).
TEST_HTPASSWD = "archive-user:$2b$04$V/h87yt93UJZdREz/hVs8.JB0afrwHp1pgN7l048EUXyxyyhqBFhW\n"
INSTALL_HINT = (
    "the tests need Debian's `docker-registry` package (distribution 2.8, /usr/bin/docker-registry): "
    "apt-get install --no-install-recommends docker-registry"
)


class RegistryUnavailable(RuntimeError):
    """docker-registry is not installed, or did not come up."""


@dataclass
class LocalRegistry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    log: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reference(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    def blob_data(self, digest: str) -> Path:
        """Where distribution's filesystem driver keeps a blob's bytes."""
        hex_digest = digest.removeprefix("sha256:")
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=2):
            return True
    except urllib.error.HTTPError as error:
        return error.code == 401  # a registry with authentication answers the ping with its challenge
    except OSError:
        return False


def _start(root: Path, htpasswd: str | None, auth: dict | None) -> LocalRegistry:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryUnavailable(f"docker-registry is not on PATH; {INSTALL_HINT}")
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "hpsforge-tests"},
    }
    if htpasswd is not None:
        (root / "htpasswd").write_text(htpasswd)
        config["auth"] = {"htpasswd": {"realm": "hpsforge-tests", "path": str(root / "htpasswd")}}
    elif auth is not None:
        config["auth"] = auth
    # YAML is a superset of JSON: no YAML writer needed.
    (root / "config.yml").write_text(json.dumps(config, indent=2))
    # REGISTRY_* variables would override the configuration file.
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    log = root / "registry.log"
    with open(log, "wb") as log_stream:
        process = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")],
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    registry = LocalRegistry(f"127.0.0.1:{port}", storage, log, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(registry.url):
        if not registry.running or time.monotonic() > deadline:
            registry.stop()
            raise RegistryUnavailable(
                f"docker-registry did not answer on {registry.url} within "
                f"{START_TIMEOUT_S} s (exit {process.poll()}):\n{log.read_text()[-2000:]}"
            )
        time.sleep(0.05)
    return registry


@contextlib.contextmanager
def local_registry(root: Path, *, htpasswd: str | None = None, auth: dict | None = None) -> Iterator[LocalRegistry]:
    """A running registry under `root`; with `htpasswd` (bcrypt lines), one that wants HTTP basic
    auth; with `auth`, that configuration section (e.g. TokenServer.registry_auth())."""
    for attempt in range(3):  # the free port may be taken between probing and binding it
        try:
            registry = _start(root / f"registry-{attempt}", htpasswd, auth)
            break
        except RegistryUnavailable as error:
            if "not on PATH" in str(error) or "address already in use" not in str(error) or attempt == 2:
                raise
    try:
        yield registry
    finally:
        registry.stop()
