"""`nox -s freeze`: re-resolve the chosen locks and write them only once every one resolved.

Each lock kind of locks/kinds.py that freeze writes has one freezer here. Locks resolved in the
rc image come last, and the rc image they need is built by the caller's `shared_images` (from the
locks this freeze resolved first, or the committed ones): the freeze never walks the build graph
itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
from hpsforge.core.project import Project
from hpsforge.core.settings import settings
from hpsforge.freeze import apt, pip_compile, pypi_files, rc_tools
from hpsforge.freeze import conversions as freeze_conversions
from hpsforge.images import converter
from hpsforge.inputs.store import ContentStore
from hpsforge.locks import conversions, pip_locks
from hpsforge.locks.debian import DebianLock
from hpsforge.locks.images_lock import ImageRecord
from hpsforge.locks.kinds import LockKind, select

# Builds (or finds) the base and rc images from these locks (None: the committed ones): role -> record.
SharedImages = Callable[[DebianLock | None, str | None], dict[str, ImageRecord]]


@dataclass
class FreezeContext:
    """What the freezers of one run share: the index options, the store, the locks resolved so
    far, and the rc image (built once, when first needed)."""

    project: Project
    index: pip_compile.IndexOptions
    shared_images: SharedImages
    store: ContentStore = field(default_factory=ContentStore)
    pending: dict[str, str] = field(default_factory=dict)
    _shared: dict[str, ImageRecord] | None = None

    def _images(self) -> dict[str, ImageRecord]:
        if self._shared is None:
            base_text = self.pending.get("base")
            base_lock = DebianLock.model_validate_json(base_text) if base_text else None
            self._shared = self.shared_images(base_lock, self.pending.get("rc"))
        return self._shared

    def rc_image(self) -> ImageRecord:
        return self._images()["rc"]

    def converter(self) -> converter.ImageConverter:
        """The converter image (built from the committed convert lock), as a converter."""
        shared, config = self._images(), self.project.config
        image = converter.build(config, shared["base"], shared["rc"])
        return converter.ImageConverter(image, config.base.source_date_epoch)


Freezer = Callable[[FreezeContext], "str | None"]  # the lock's fresh text (None: the project needs no such lock)


def _freezer(kind: LockKind, context: FreezeContext) -> Freezer:
    config, pipelines = context.project.config, context.project.pipelines
    if kind.name == "engine":
        return lambda c: apt.freeze_engine(config.engine, c.store).canonical_text()
    if kind.name == "base":
        return lambda c: apt.freeze_base(config.base, c.store).canonical_text()
    if kind.name == "rc":
        return lambda c: rc_tools.freeze(config.rc)
    if kind.name == "model-sources":
        return lambda c: pypi_files.freeze(pipelines)
    if kind.name == pip_locks.CLIENT:
        return lambda c: pip_compile.compile_client_lock(c.rc_image(), c.index)
    if kind.name == pip_locks.DOCS:
        return lambda c: pip_compile.compile_docs_lock(c.rc_image(), c.index)
    if kind.name == pip_locks.CONVERT:
        return lambda c: pip_compile.compile_convert_lock(c.rc_image(), c.index)
    if kind.name == conversions.KIND:
        return lambda c: freeze_conversions.freeze(c.project, c.converter(), c.store, c.pending.get(pip_locks.CONVERT))
    if kind.name == pip_locks.PERF_ANALYZER:
        return lambda c: pip_compile.compile_perf_analyzer_lock(c.rc_image(), c.index)
    if kind.name == pip_locks.BENCH:
        return lambda c: pip_compile.compile_bench_lock(
            c.rc_image(), c.index, c.pending.get(pip_locks.BENCH_BASE_TARGET)
        )
    if kind.name in config.targets:
        return lambda c: pip_compile.compile_lock(config, pipelines, kind.name, c.rc_image(), c.index)
    raise HpsforgeError(f"freeze has no freezer for the lock {kind.name} ({kind.path})")


def freeze(
    project: Project, names: list[str], index: pip_compile.IndexOptions, shared_images: SharedImages
) -> dict[str, bool]:
    """Re-resolve the named locks (all when none is named); write them, all or none. Returns
    each written lock's name -> whether its file changed."""
    chosen = select(project, names)  # an unknown name fails before anything runs
    context = FreezeContext(project, index, shared_images)
    freezers = {kind.name: _freezer(kind, context) for kind in chosen}
    started = time.monotonic()
    for kind in sorted(chosen, key=lambda kind: kind.in_rc):
        text = freezers[kind.name](context)
        if text is not None:
            context.pending[kind.name] = text
    changed = {}
    for kind in chosen:
        if kind.name in context.pending:
            changed[kind.name] = atomic_write_text(kind.path, context.pending[kind.name])
            print(
                f"hpsforge: {settings().shown(kind.path)}: {'updated' if changed[kind.name] else 'unchanged'}",
                flush=True,
            )
    print(f"hpsforge: freeze done in {time.monotonic() - started:.1f} s", flush=True)
    return changed
