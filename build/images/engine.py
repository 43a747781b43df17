"""Make sure a Docker engine with BuildKit and the containerd image store answers.

On a bare Debian host, as root, it installs the engine from the pinned, hash-checked .debs of
lock/engine.lock.json and starts dockerd in the background; anywhere else it explains what is
missing. With an engine already up the whole check is a few CLI calls.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.config import EngineConfig, version_tuple
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
from hpsforge.inputs import debs
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.debian import DebianLock, engine_lock_path

DAEMON_CONFIG = Path("/etc/docker/daemon.json")
READY_TIMEOUT_S = 60
CHECK_TIMEOUT_S = 20
# apt-get on the local repository of the closure: no network, but maintainer scripts and dpkg
# triggers run; an install that takes longer than this is stuck (a prompt, a lock).
APT_UPDATE_TIMEOUT_S = 300
APT_INSTALL_TIMEOUT_S = 1800


class EngineStatus:
    """What the engine answered: versions and whether images live in containerd."""

    def __init__(self, server: str, buildx: str, containerd_store: bool) -> None:
        self.server, self.buildx, self.containerd_store = server, buildx, containerd_store

    def __str__(self) -> str:
        return f"Docker engine {self.server}, buildx {self.buildx}, containerd image store"


def host_architecture() -> str:
    return proc.run(
        ["dpkg", "--print-architecture"], what="reading this host's Debian architecture failed", timeout=CHECK_TIMEOUT_S
    ).stdout.strip()


def _docker(*args: str) -> proc.Result:
    """A quick docker CLI question; its exit code is the caller's to read."""
    return proc.run(["docker", *args], what=f"`docker {' '.join(args)}` failed", timeout=CHECK_TIMEOUT_S, check=False)


def probe() -> EngineStatus | None:
    """The running engine's status, or None when no daemon answers."""
    if shutil.which("docker") is None:
        return None
    try:
        info = _docker("info", "--format", "{{json .}}")
    except HpsforgeError:  # no answer in time: as good as no daemon
        return None
    if info.returncode != 0:
        return None
    details = json.loads(info.stdout)
    driver_status = dict(details.get("DriverStatus") or [])
    try:
        buildx = _docker("buildx", "version")
    except HpsforgeError:
        return None
    words = buildx.stdout.split()
    buildx_version = words[1] if buildx.returncode == 0 and len(words) > 1 else ""
    return EngineStatus(
        server=details.get("ServerVersion", ""),
        buildx=buildx_version,
        containerd_store=driver_status.get("driver-type") == "io.containerd.snapshotter.v1",
    )


def _older(found: str, minimum: str) -> bool:
    try:
        return version_tuple(found) < version_tuple(minimum)
    except ValueError:
        return True  # a version we cannot read is not one we can vouch for


def check_requirements(status: EngineStatus, config: EngineConfig) -> None:
    problems = []
    if _older(status.server, config.minimum_server_version):
        problems.append(f"engine {status.server} is older than {config.minimum_server_version}")
    if not status.buildx:
        problems.append("the buildx plugin is missing (Debian package docker-buildx)")
    elif _older(status.buildx, config.minimum_buildx_version):
        problems.append(f"buildx {status.buildx} is older than {config.minimum_buildx_version}")
    if not status.containerd_store:
        problems.append(
            'images are not in the containerd store: add {"features": {"containerd-snapshotter": true}} '
            f"to {DAEMON_CONFIG} and restart dockerd"
        )
    if problems:
        raise HpsforgeError(
            "the running Docker engine cannot build hpsforge images:\n  - " + "\n  - ".join(problems),
            hint="fix the engine as listed (hpsforge does not reconfigure an engine it did not start)",
        )


def ensure(config: EngineConfig) -> EngineStatus:
    """Return a usable engine, bringing one up first when this host allows it."""
    status = probe()
    if status is None:
        _bootstrap(config)
        status = probe()
        if status is None:
            raise HpsforgeError(f"dockerd started but does not answer; see {config.daemon_log}")
    elif shutil.which("mmdebstrap") is None and _is_debian() and os.geteuid() == 0:
        install_host_packages(config)  # an engine of the user's own, but not yet the base's builder
    check_requirements(status, config)
    print(f"hpsforge: {status}", flush=True)
    return status


def _is_debian() -> bool:
    try:
        release = Path("/etc/os-release").read_text()
    except FileNotFoundError:
        return False
    return any(line in ("ID=debian", 'ID="debian"') for line in release.splitlines())


def _bootstrap(config: EngineConfig) -> None:
    if not _is_debian() or os.geteuid() != 0:
        who = "this host is not Debian" if not _is_debian() else "this user is not root"
        raise HpsforgeError(
            f"no Docker engine answers, and hpsforge installs one only on Debian as root ({who})",
            hint="install Docker Engine >= 26 with the buildx plugin (docs.docker.com/engine/install), "
            'set {"features": {"containerd-snapshotter": true}} in /etc/docker/daemon.json, '
            "start dockerd, and make `docker info` work for this user",
        )
    if shutil.which("dockerd") is None or shutil.which("mmdebstrap") is None:
        install_host_packages(config)
    write_daemon_config(config)
    _start_daemon(config.daemon_log)


def install_host_packages(config: EngineConfig, names: list[str] | None = None) -> None:
    """apt-get install the declared engine packages (or `names`, e.g. a test tool) from a local
    repository of the locked closure only: every file's sha256 is checked first, the host's own
    apt sources are never asked, and what the host already has at a good version is kept."""
    lock = DebianLock.read(engine_lock_path())
    lock.require_fresh(engine_lock_path(), config.declaration_sha256())
    names = names or [package.name for package in config.packages]
    files = debs.fetch(lock, ContentStore())
    print(f"hpsforge: installing {', '.join(names)} from the locked closure ({len(files)} .debs)", flush=True)
    staging = Path("/var/cache/hpsforge-engine")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        repo = staging / "repo"
        debs.local_repository(config.host_suite, host_architecture(), lock.packages, files, repo)
        (staging / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
        (staging / "lists" / "partial").mkdir(parents=True)
        (staging / "archives" / "partial").mkdir(parents=True)
        only_the_closure = [
            "-o",
            f"Dir::Etc::SourceList={staging / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=-",
            "-o",
            f"Dir::State::Lists={staging / 'lists'}",
            "-o",
            f"Dir::Cache::Archives={staging / 'archives'}",
            "-o",
            "APT::Get::List-Cleanup=false",
        ]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _refuse_service_starts(staging)
        for step, arguments, timeout in (
            ("update", ["-qq"], APT_UPDATE_TIMEOUT_S),
            ("install", ["-y", "-qq", "--no-install-recommends", *names], APT_INSTALL_TIMEOUT_S),
        ):
            proc.run(
                ["apt-get", *only_the_closure, step, *arguments],
                env=env,
                timeout=timeout,
                what=f"apt-get {step} failed",
                hint=f"the locked closure in {engine_lock_path()} may lack a dependency of this host; "
                "re-lock with `nox -s freeze -- engine`",
            )
    finally:
        _allow_service_starts(staging)
        shutil.rmtree(staging, ignore_errors=True)


POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _refuse_service_starts(staging: Path) -> None:
    """Packages' maintainer scripts must not start daemons (a registry on :5000, say): hpsforge
    starts what it needs itself. Debian's policy-rc.d hook says no while we install."""
    if POLICY_RC.exists():
        return  # the host has its own policy; leave it
    POLICY_RC.write_text("#!/bin/sh\n# hpsforge: no service starts while it installs packages\nexit 101\n")
    POLICY_RC.chmod(0o755)
    (staging / "policy-rc.d.ours").touch()


def _allow_service_starts(staging: Path) -> None:
    if (staging / "policy-rc.d.ours").exists():
        POLICY_RC.unlink(missing_ok=True)


def install_tool(config: EngineConfig, name: str) -> None:
    """Install one declared host tool (engine.tools) from the locked closure, unless present."""
    declared = [tool.name for tool in config.tools]
    if name not in declared:
        raise HpsforgeError(f"{name} is not among engine.tools in hpsforge.toml ({', '.join(declared) or 'none'})")
    status = proc.run(
        ["dpkg-query", "-W", "-f=${Status}", name],
        timeout=CHECK_TIMEOUT_S,
        what=f"asking dpkg whether {name} is installed failed",
        check=False,
    )  # exit 1: a package dpkg has never heard of, so not installed
    if status.stdout != "install ok installed":
        if not _is_debian() or os.geteuid() != 0:
            raise HpsforgeError(
                f"{name} is not installed, and hpsforge installs it only on Debian as root",
                hint=f"install Debian's {name} package",
            )
        install_host_packages(config, [name])


def write_daemon_config(config: EngineConfig, path: Path = DAEMON_CONFIG) -> None:
    """What hpsforge needs of an engine it starts: the containerd image store (digests are manifest
    digests), and a bounded BuildKit cache unless the file already sets one. Other settings stay."""
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as error:
        raise HpsforgeError(f"{path} is not valid JSON ({error})", hint="fix or remove it") from None
    wanted = copy.deepcopy(current)
    wanted.setdefault("features", {})["containerd-snapshotter"] = True
    wanted.setdefault("builder", {}).setdefault("gc", {"enabled": True, "defaultKeepStorage": config.build_cache_keep})
    if wanted != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(wanted, indent=2) + "\n")


def _start_daemon(log_path: Path) -> None:
    print(f"hpsforge: starting dockerd (log: {log_path})", flush=True)
    proc.start(["dockerd"], what="starting dockerd failed", log=log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if probe() is not None:
            return
        time.sleep(0.5)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise HpsforgeError(f"dockerd did not answer within {READY_TIMEOUT_S} s; the end of {log_path}:\n{tail}")
