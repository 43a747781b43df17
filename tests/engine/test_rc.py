from python_on_whales import docker

from hpsforge.images import rc
from hpsforge.locks import pip_locks


def test_rc_has_the_locked_tools(shared_images):
    listing = docker.run(shared_images["rc"].reference, ["pip", "freeze", "--all"], remove=True)
    installed = {line.strip().lower().replace("_", "-") for line in listing.splitlines()}
    for pinned in pip_locks.rc_lock_path().read_text().splitlines():
        if "==" in pinned and not pinned.startswith("#"):
            assert pinned.split()[0].lower() in installed


def test_rc_rebuilt_from_nothing_has_the_same_digest(config, shared_images):
    first = rc.build(config, shared_images["base"], no_cache=True)
    second = rc.build(config, shared_images["base"], no_cache=True)
    assert first.digest == second.digest
