"""The engine lock is the whole closure a bare host needs: installed with no network into a clean
bookworm system made from nothing but the lock's own files, the engine, buildx and mmdebstrap run."""

import shlex
import subprocess

from hpsforge.images.engine import host_architecture
from hpsforge.inputs import debs
from hpsforge.inputs.debs import local_repository
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import debian
from hpsforge.locks.debian import DebianLock


def test_the_engine_closure_installs_offline_into_a_clean_bookworm_rootfs(config, engine_status, tmp_path):
    lock = DebianLock.read(debian.engine_lock_path())
    repo = tmp_path / "repo"
    local_repository(
        config.engine.host_suite, host_architecture(), lock.packages, debs.fetch(lock, ContentStore()), repo
    )
    names = [package.name for package in config.engine.packages]
    report = tmp_path / "versions.txt"
    check = (
        "dockerd --version; docker --version; docker buildx version; containerd --version; "
        "runc --version | head -1; mmdebstrap --version"
    )
    result = subprocess.run(
        [
            "unshare",
            "-n",
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(names)}",
            f'--customize-hook=chroot "$1" sh -ec {shlex.quote(check)} > {shlex.quote(str(report))}',
            "--format=null",
            config.engine.host_suite,
            "/dev/null",
            f"deb [trusted=yes] copy://{repo} ./",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    versions = report.read_text()
    print(versions)
    locked = {package.name: package.version for package in lock.packages}
    assert f"Docker version {locked['docker.io'].split('+')[0]}" in versions
    assert f"github.com/docker/buildx {locked['docker-buildx'].split('+')[0]}" in versions
    assert "runc version" in versions and "mmdebstrap" in versions


def test_a_closure_missing_a_dependency_fails_the_offline_install(config, engine_status, tmp_path):
    lock = DebianLock.read(debian.engine_lock_path())
    kept = [package for package in lock.packages if package.name != "runc"]
    store = ContentStore()
    repo = tmp_path / "repo"
    local_repository(
        config.engine.host_suite, host_architecture(), kept, [store.verified(p.sha256, p.deb_name) for p in kept], repo
    )
    result = subprocess.run(
        [
            "unshare",
            "-n",
            "mmdebstrap",
            "--variant=minbase",
            "--include=docker.io",
            "--format=null",
            config.engine.host_suite,
            "/dev/null",
            f"deb [trusted=yes] copy://{repo} ./",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "runc" in result.stdout + result.stderr
