"""The user's entry point: ./noxw lists the sessions and turns bad input into one clear message."""

import os
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ("engine", "freeze", "images", "unit", "tests")


def noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, cwd=PROJECT_ROOT, timeout=120,
    )


def test_every_session_is_listed_with_a_description():
    listing = noxw("-l")
    assert listing.returncode == 0, listing.stderr
    for session in SESSIONS:
        line = next(l for l in listing.stdout.splitlines() if l[2:].startswith(f"{session} -> "))
        assert len(line.split(" -> ", 1)[1]) > 20


def test_malformed_config_is_one_clear_message(tmp_path):
    bad = tmp_path / "hpsforge.toml"
    bad.write_text((PROJECT_ROOT / "hpsforge.toml").read_text().replace("[rc]", "[rc]\ncolour = 'blue'"))
    result = noxw("-s", "images", env={"HPSFORGE_CONFIG": str(bad)})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{bad}: invalid configuration" in output
    assert "rc.colour: unknown field" in output
    assert "Traceback" not in output


def test_unknown_session_argument_is_refused():
    result = noxw("-s", "images", "--", "--frobnicate")
    assert result.returncode != 0
    assert "unrecognized arguments: --frobnicate" in result.stdout + result.stderr
