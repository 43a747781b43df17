"""What each nox session does, one function per user command (noxfile.py only maps to these)."""

from __future__ import annotations

import argparse
import time

from hpsforge import base, buildkit, debian, engine, rc
from hpsforge.config import ProjectConfig, load_config
from hpsforge.errors import HpsforgeError
from hpsforge.files import atomic_write_text


def _parse(prog: str, argv: list[str], *options: tuple[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"nox -s {prog} --", exit_on_error=False)
    for flag, help_text in options:
        parser.add_argument(flag, action="store_true", help=help_text)
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise HpsforgeError(str(error)) from None
    if unknown:
        raise HpsforgeError(f"nox -s {prog}: unknown argument(s) {' '.join(unknown)}",
                            hint=parser.format_usage().strip())
    return namespace


def run_engine(argv: list[str]) -> engine.EngineStatus:
    """Make sure the Docker engine answers, installing and starting it on a bare Debian host."""
    _parse("engine", argv)
    started = time.monotonic()
    status = engine.ensure(load_config().engine)
    print(f"hpsforge: engine ready in {time.monotonic() - started:.1f} s", flush=True)
    return status


def run_freeze(argv: list[str]) -> None:
    """Re-resolve every lock; write them only once all of them resolved."""
    _parse("freeze", argv)
    config = load_config()
    engine.ensure(config.engine)  # also installs mmdebstrap, which resolves the base
    started = time.monotonic()
    engine_lock = debian.freeze_engine(config.engine)
    base_lock = base.freeze(config.base)
    rc_text = rc.freeze(config.rc)
    changed = {
        debian.ENGINE_LOCK: engine_lock.write(debian.ENGINE_LOCK),
        debian.BASE_LOCK: base_lock.write(debian.BASE_LOCK),
        rc.RC_LOCK: atomic_write_text(rc.RC_LOCK, rc_text),
    }
    for path, was_changed in changed.items():
        print(f"hpsforge: {path.name}: {'updated' if was_changed else 'unchanged'}", flush=True)
    print(f"hpsforge: freeze done in {time.monotonic() - started:.1f} s", flush=True)


def build_shared_images(config: ProjectConfig, *, no_cache: bool) -> dict[str, buildkit.ImageRecord]:
    """The images every target builds on: the base and the rc image."""
    base_image = base.build(config, no_cache=no_cache)
    rc_image = rc.build(config, base_image, no_cache=no_cache)
    return {base.ROLE: base_image, rc.ROLE: rc_image}


def run_images(argv: list[str]) -> None:
    """Verify every input against the locks, then build the images."""
    options = _parse("images", argv, ("--no-cache", "rebuild everything: no BuildKit cache, a fresh rootfs"))
    config = load_config()
    engine.ensure(config.engine)
    started = time.monotonic()
    built = build_shared_images(config, no_cache=options.no_cache)
    print(f"hpsforge: images built in {time.monotonic() - started:.1f} s", flush=True)
    for role, record in built.items():
        print(f"  {role:6} {record.reference}  {record.digest}")
