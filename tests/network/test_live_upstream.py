"""Against the live Debian mirror and PyPI: does a freeze still work there, and does upstream still
serve what the committed locks name? When upstream moved, these fail saying so and naming the
re-lock command; tests/engine/test_freeze.py proves the freeze itself, hermetically."""

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from hpsforge.locks import debian, model_sources

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _served(url: str) -> str | None:
    """None when `url` answers a HEAD request, else why not."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30):
            return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except OSError as error:
        return str(error)


def test_every_locked_deb_and_model_source_is_still_served_upstream(engine_status):
    gone = []
    for path in (debian.engine_lock_path(), debian.base_lock_path()):
        for package in debian.DebianLock.read(path).packages:
            if (why := _served(package.url)) is not None:
                gone.append(f"{path.name}: {package.url}: {why}")
    for entry in model_sources.ModelSourcesLock.read().files:
        if (why := _served(entry.url)) is not None:
            gone.append(f"{model_sources.model_sources_lock_path().name}: {entry.url}: {why}")
    assert not gone, (
        "upstream moved: files the committed locks name are no longer served there:\n  "
        + "\n  ".join(gone)
        + "\nre-lock with `./noxw -s freeze` (users with an input archive "
        "or snapshot.debian.org access still build the recorded images)"
    )


def test_a_live_freeze_of_every_lock_succeeds_and_passes_lock_check(engine_status, tmp_path):
    locks = tmp_path / "lock"
    shutil.copytree(PROJECT_ROOT / "lock", locks)
    env = {"HPSFORGE_LOCK_DIR": str(locks)}
    frozen = _noxw("-s", "freeze", env=env)
    assert frozen.returncode == 0, (
        "a live freeze failed; if upstream moved, adjust the declarations and "
        f"re-lock with `./noxw -s freeze`:\n{frozen.stdout[-3000:]}{frozen.stderr[-3000:]}"
    )
    checked = _noxw("-s", "lock-check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    drift = [
        path.name
        for path in sorted(locks.rglob("*"))
        if path.is_file() and path.read_bytes() != (PROJECT_ROOT / "lock" / path.relative_to(locks)).read_bytes()
    ]
    print(f"locks a freeze would change today: {', '.join(drift) or 'none'}")


def test_an_unsatisfiable_pin_fails_the_freeze_and_replaces_no_lock(engine_status, tmp_path):
    conflicting = (
        (PROJECT_ROOT / "hpsforge.toml")
        .read_text()
        .replace('requirements = ["paddlepaddle==3.3.1", ', 'requirements = ["paddlepaddle==3.3.1", "numpy>=2", ')
    )
    assert "numpy>=2" in conflicting
    config = tmp_path / "hpsforge.toml"
    config.write_text(conflicting)
    locks = tmp_path / "lock"
    shutil.copytree(PROJECT_ROOT / "lock", locks)
    before = {path: path.read_bytes() for path in locks.rglob("*") if path.is_file()}
    result = _noxw("-s", "freeze", "--", "cpu", env={"HPSFORGE_CONFIG": str(config), "HPSFORGE_LOCK_DIR": str(locks)})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "`pip-compile` failed in the rc image" in output and "numpy>=2" in output
    assert "cannot be resolved together" in output
    assert {path: path.read_bytes() for path in before} == before
