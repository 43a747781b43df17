import subprocess
import time

from hpsforge.images import engine


def test_engine_answers_with_buildkit_and_containerd_store(engine_status, config):
    assert engine_status.containerd_store
    assert engine_status.buildx
    engine.check_requirements(engine_status, config.engine)


def test_engine_check_is_quick_when_up(engine_status, config):
    started = time.monotonic()
    engine.ensure(config.engine)
    # Not a benchmark: a generous bound that only a hang or a needless reinstall would break.
    assert time.monotonic() - started < 10


def test_buildx_uses_the_daemons_buildkit(engine_status):
    listing = subprocess.run(["docker", "buildx", "ls"], capture_output=True, text=True, check=True).stdout
    assert "docker" in listing and "running" in listing
