"""The build graph: every image hpsforge builds, what it is built from, in one object.

    base ─► rc ─► runtime-<target> ─► pipeline-<name>-<target>
      ├──────────────┘ (the runtime's layers sit on the base; rc fetches its wheels)
      └─► converter ────────────────────────┘ (when a model declares a converted engine)

Nodes are data: `BuildGraph.of` makes one per image from the project's targets and pipelines, so
adding either touches no wiring. `build` runs the graph's preflight (every lock fresh, when the
graph builds a target), then walks the nodes in order and returns their records; whoever runs it
(a session) records the digests once, at the end. images, repro, bench, freeze (its rc image) and
the test fixtures all walk this graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.project import Project
from hpsforge.images import base, converter, pipeline_images, rc, runtime
from hpsforge.images.buildkit import Backend
from hpsforge.locks import conversions
from hpsforge.locks import kinds as lock_kinds
from hpsforge.locks.debian import DebianLock
from hpsforge.locks.images_lock import ImageRecord


@dataclass(frozen=True)
class BuildOptions:
    no_cache: bool = False  # a fresh rootfs and no BuildKit cache: a rebuild from nothing
    revision: str | None = None  # the runtimes' source-revision label (makes digests commit-specific)
    tag_suffix: str = ""  # rebuilds get tags of their own, so the first build stays in the engine
    backend: Backend = Backend()  # the builder and registry cache BuildKit uses


# Nodes built at once: two overlap one's downloads with the other's installing on 2 cores.
PARALLEL_BUILDS = 2

# How a node is built: (its parents' records by role, the walk's options) -> its record.
BuildStep = Callable[[dict[str, ImageRecord], BuildOptions], ImageRecord]


@dataclass(frozen=True)
class Node:
    role: str  # its key in lock/images.lock.json: base, rc, runtime-cpu, pipeline-ocr-cpu, ...
    kind: str  # base, rc, converter, runtime or pipeline
    parents: tuple[str, ...]
    build: BuildStep
    target: str | None = None
    pipeline: str | None = None
    # False for a tool image (the converter): repro proves what it makes, not its digest.
    bit_for_bit: bool = True


class BuildGraph:
    """Nodes in build order (every parent before its children)."""

    def __init__(self, nodes: list[Node], preflight: Callable[[], None] | None = None) -> None:
        seen: set[str] = set()
        for node in nodes:
            if node.role in seen:
                raise HpsforgeError(f"the build graph has two nodes called {node.role}")
            if missing := [parent for parent in node.parents if parent not in seen]:
                raise HpsforgeError(f"{node.role}: its parents {', '.join(missing)} come later or not at all")
            seen.add(node.role)
        self.nodes = {node.role: node for node in nodes}
        self.preflight = preflight  # checked once before the first node is built

    @classmethod
    def of(
        cls,
        project: Project,
        targets: list[str] | tuple[str, ...] = (),
        *,
        with_pipelines: bool = True,
        base_lock: DebianLock | None = None,
        rc_lock_text: str | None = None,
    ) -> BuildGraph:
        """base and rc, each target's runtime and (with_pipelines) one image per pipeline and target.
        base_lock / rc_lock_text: build from these (a freeze's fresh locks) instead of lock/.
        A graph with targets first checks every lock of the project (`nox -s lock-check`)."""
        config, pipelines = project.config, project.pipelines
        nodes = [
            Node(
                base.ROLE,
                "base",
                (),
                lambda parents, options: base.build(
                    config,
                    lock=base_lock,
                    no_cache=options.no_cache,
                    tag_suffix=options.tag_suffix,
                    backend=options.backend,
                ),
            ),
            Node(
                rc.ROLE,
                "rc",
                (base.ROLE,),
                lambda parents, options: rc.build(
                    config,
                    parents[base.ROLE],
                    lock_text=rc_lock_text,
                    no_cache=options.no_cache,
                    tag_suffix=options.tag_suffix,
                    backend=options.backend,
                ),
            ),
        ]
        converts = bool(targets) and with_pipelines and conversions.has_conversions(pipelines)
        if converts:  # the pipelines' converted model files are made (or re-made, by repro) in it
            nodes.append(
                Node(
                    converter.ROLE,
                    "converter",
                    (base.ROLE, rc.ROLE),
                    lambda parents, options: converter.build(
                        config,
                        parents[base.ROLE],
                        parents[rc.ROLE],
                        no_cache=options.no_cache,
                        tag_suffix=options.tag_suffix,
                        backend=options.backend,
                    ),
                    bit_for_bit=False,
                )
            )
        for target in targets:
            config.target(target)  # an unknown target fails before anything is built
            nodes.append(
                Node(runtime.role(target), "runtime", (base.ROLE, rc.ROLE), _runtime(config, target), target=target)
            )
            if with_pipelines:
                nodes += [
                    Node(
                        pipeline_images.role(name, target),
                        "pipeline",
                        (runtime.role(target), *((converter.ROLE,) if converts else ())),
                        _pipeline(config, name, pipeline, target),
                        target=target,
                        pipeline=name,
                    )
                    for name, pipeline in pipelines.items()
                ]
        return cls(nodes, preflight=(lambda: lock_kinds.check(project)) if targets else None)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def check(self) -> None:
        """The graph's preflight: what must hold before any node is built (every lock fresh)."""
        if self.preflight is not None:
            self.preflight()

    def build(
        self,
        options: BuildOptions = BuildOptions(),
        *,
        on_built: Callable[[Node, ImageRecord, float], None] | None = None,
    ) -> dict[str, ImageRecord]:
        """Check the preflight, then build (or find up to date) every node, each once all its parents
        are; role -> record, in the graph's order. Independent nodes (a runtime and the converter)
        build side by side: each spends much of its time downloading and installing."""
        self.check()
        built: dict[str, ImageRecord] = {}
        waiting = list(self.nodes.values())
        running: dict[Future[ImageRecord], tuple[Node, float]] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS, thread_name_prefix="build") as pool:
            while waiting or running:
                ready = [node for node in waiting if all(parent in built for parent in node.parents)]
                for node in ready[: PARALLEL_BUILDS - len(running)] if failure is None else []:
                    waiting.remove(node)
                    parents = {parent: built[parent] for parent in node.parents}
                    running[pool.submit(node.build, parents, options)] = (node, time.monotonic())
                if not running:
                    break  # a failure stopped the walk, or nothing is left that can start
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    node, started = running.pop(future)
                    try:
                        built[node.role] = future.result()
                    except BaseException as error:  # the first failure is raised once the others end
                        failure = failure or error
                        continue
                    if on_built is not None:
                        on_built(node, built[node.role], time.monotonic() - started)
        if failure is not None:
            raise failure
        return {role: built[role] for role in self.nodes}


def _runtime(config: ProjectConfig, target: str) -> BuildStep:
    def build(parents: dict[str, ImageRecord], options: BuildOptions) -> ImageRecord:
        return runtime.build(
            config,
            target,
            parents[base.ROLE],
            parents[rc.ROLE],
            revision=options.revision,
            no_cache=options.no_cache,
            tag_suffix=options.tag_suffix,
            backend=options.backend,
        )

    return build


def _pipeline(config: ProjectConfig, name: str, pipeline: Pipeline, target: str) -> BuildStep:
    def build(parents: dict[str, ImageRecord], options: BuildOptions) -> ImageRecord:
        converter_image = parents.get(converter.ROLE)
        return pipeline_images.build(
            config,
            name,
            pipeline,
            target,
            parents[runtime.role(target)],
            converter=(
                converter.ImageConverter(converter_image, config.base.source_date_epoch)
                if converter_image is not None
                else None
            ),
            no_cache=options.no_cache,
            tag_suffix=options.tag_suffix,
            backend=options.backend,
        )

    return build


def build_shared_images(
    config: ProjectConfig,
    *,
    no_cache: bool = False,
    base_lock: DebianLock | None = None,
    rc_lock_text: str | None = None,
) -> dict[str, ImageRecord]:
    """The images every target builds on (base, rc): the graph without targets."""
    return BuildGraph.of(Project(config, {}), base_lock=base_lock, rc_lock_text=rc_lock_text).build(
        BuildOptions(no_cache=no_cache)
    )
