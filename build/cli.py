"""What each nox session does, one function per user command (noxfile.py only maps to these)."""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import NoReturn, get_args

from pydantic import ValidationError
from python_on_whales import docker

from hpsforge.bench import rebuild
from hpsforge.bench.serving import measure as serving_measure
from hpsforge.bench.serving import perf_analyzer
from hpsforge.bench.serving import report as serving_report
from hpsforge.bundle import assemble
from hpsforge.core.config import load_config
from hpsforge.core.errors import (
    DigestMismatchError,
    HpsforgeError,
    UsageError,
)
from hpsforge.core.pipelines import Engine, Pipeline, select
from hpsforge.core.project import Project
from hpsforge.docs import site
from hpsforge.freeze import host_lock, pip_compile, resolve
from hpsforge.images import (
    buildkit,
    converter,
    engine,
    gpu,
    graph,
    kernels,
    new_pipeline,
    pipeline_images,
    rc,
    runtime,
    sizes,
)
from hpsforge.images.containers import ImageWheelsets, fetch_wheelhouse
from hpsforge.inputs import archive, blobs, model_files, wheelhouse
from hpsforge.inputs.store import ContentStore, scratch_dir
from hpsforge.locks import images_lock
from hpsforge.locks import kinds as lock_kinds
from hpsforge.prove import conformance, lint, parity, provenance, repro, sbom
from hpsforge.prove import release as prove_release
from hpsforge.ship import engines as ship_engines
from hpsforge.ship import registry, release, serve, signing


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as a UsageError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=self.format_usage().strip())


def _parser(session: str) -> _Parser:
    return _Parser(prog=f"nox -s {session} --")  # `nox -s images -- --help` prints every option


def _target_name(name: str) -> str:
    """A target argument as typed: an alias (hpsforge.toml's [aliases]) means the target it stands for."""
    target = load_config().target_name(name)
    if target != name:
        print(f"hpsforge: {name} is target {target} (aliases.{name} in hpsforge.toml)", flush=True)
    return target


def _target_parser(session: str) -> _Parser:
    parser = _parser(session)
    parser.add_argument("target", type=_target_name, help="the device target: cpu, gpu (= gpu-cu12) or gpu-cu118")
    return parser


def _parse(prog: str, argv: list[str], *flags: tuple[str, str]) -> argparse.Namespace:
    parser = _parser(prog)
    for flag, help_text in flags:
        parser.add_argument(flag, action="store_true", help=help_text)
    return parser.parse_args(argv)


def run_engine(argv: list[str]) -> engine.EngineStatus:
    """Make sure the Docker engine answers, installing and starting it on a bare Debian host."""
    _parse("engine", argv)
    started = time.monotonic()
    status = engine.ensure(Project.load().config.engine)
    print(f"hpsforge: engine ready in {time.monotonic() - started:.1f} s", flush=True)
    return status


def run_freeze(argv: list[str]) -> None:
    """Re-resolve the locks (all, or the named ones); write them only once every one of them resolved."""
    parser = _parser("freeze")
    parser.add_argument(
        "locks",
        nargs="*",
        help="re-lock only these: engine, base, rc, model-sources, a target (cpu, gpu-cu12...), client, bench or docs",
    )
    parser.add_argument("-p", "--index-url", help="the package index pip-compile resolves from")
    parser.add_argument("--extra-index-url", action="append", default=[], help="an extra index (repeatable)")
    parser.add_argument("--upgrade", action="store_true", help="re-resolve to the newest allowed versions")
    options = parser.parse_args(argv)
    project = Project.load()
    options.locks = [_target_name(name) if name in project.config.aliases else name for name in options.locks]
    lock_kinds.select(project, options.locks)  # an unknown name fails before the engine starts
    index = pip_compile.IndexOptions(options.index_url, tuple(options.extra_index_url), options.upgrade)
    engine.ensure(project.config.engine)  # also installs mmdebstrap, which resolves the Debian locks
    resolve.freeze(
        project,
        options.locks,
        index,
        shared_images=lambda base_lock, rc_lock_text: graph.build_shared_images(
            project.config, base_lock=base_lock, rc_lock_text=rc_lock_text
        ),
    )


def run_lock_check(argv: list[str]) -> None:
    """Fail, naming each stale or unhashed lock and its refresh command."""
    _parse("lock-check", argv)
    lock_kinds.check(Project.load())
    print("hpsforge: every lock matches its declaration and every requirement is hashed", flush=True)


def run_keygen(argv: list[str]) -> None:
    """A release key pair: PREFIX.private (sigstore's encrypted format) and PREFIX.pub."""
    parser = _parser("keygen")
    parser.add_argument("prefix", type=Path, help="writes PREFIX.private and PREFIX.pub")
    parser.add_argument("--passphrase-file", type=Path, help="the passphrase (else $HPSFORGE_SIGNING_PASSPHRASE)")
    options = parser.parse_args(argv)
    private, public = signing.generate(options.prefix, signing.passphrase(options.passphrase_file))
    print(f"hpsforge: wrote {private} (keep it secret) and {public} (give it to verifiers)", flush=True)


def run_verify(argv: list[str]) -> None:
    """A target: check its vendor blobs and every pipeline's model files before any build step.
    REF@sha256:...: check a pushed image's signature and provenance against the key and the locks."""
    if argv and "@sha256:" in argv[0]:
        _verify_image(argv)
        return
    options = _target_parser("verify").parse_args(argv)
    project = Project.load()
    target = project.config.target(options.target)
    lock_kinds.check(project)
    started = time.monotonic()
    checked = blobs.verify_blobs(target.blobs)
    files = model_files.verify_pipelines(project.pipelines)
    print(
        f"hpsforge: {options.target}: {len(checked)} vendor blob(s) and {files} model file(s) verified "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )


def _verify_image(argv: list[str]) -> None:
    parser = _parser("verify")
    parser.add_argument("reference", help="REGISTRY/REPOSITORY@sha256:<digest>, as pushed")
    parser.add_argument("--key", type=Path, required=True, help="the release public key (PEM)")
    parser.add_argument("--rebuilds", type=int, default=0, metavar="N", help="require N rebuilds from distinct keys")
    parser.add_argument(
        "--rebuilder-key", type=Path, action="append", default=[], metavar="PUB", help="a rebuilder's public key"
    )
    options = parser.parse_args(argv)
    if options.rebuilds > len(options.rebuilder_key):
        raise UsageError(
            f"--rebuilds {options.rebuilds} needs at least as many --rebuilder-key PUB (given: "
            f"{len(options.rebuilder_key)})"
        )
    verified = prove_release.verify_pushed(
        options.reference, options.key, options.rebuilds, options.rebuilder_key, signing
    )
    print("\n".join(verified.lines()), flush=True)


def run_fetch(argv: list[str]) -> None:
    """Download every locked wheel of a target into the hash-checked wheelhouse."""
    options = _target_parser("fetch").parse_args(argv)
    project = Project.load()
    project.config.target(options.target)
    lock_kinds.check(project)
    engine.ensure(project.config.engine)
    started = time.monotonic()
    folder = fetch_wheelhouse(options.target, graph.build_shared_images(project.config)[rc.ROLE])
    print(f"hpsforge: wheelhouse {folder} ready in {time.monotonic() - started:.1f} s", flush=True)


def run_kernels(argv: list[str]) -> None:
    """Print which GPU architectures a target's CUDA libraries have kernels for (read from its
    verified wheels), against its promise or the architectures named; exit 14 when one is not covered."""
    parser = _target_parser("kernels")
    parser.add_argument(
        "--architectures",
        metavar="SM,...",
        help="check these (sm_61,sm_90) instead of the target's targets.<t>.cuda.architectures",
    )
    options = parser.parse_args(argv)
    project = Project.load()
    cuda = project.config.target(options.target).cuda
    promised = options.architectures.split(",") if options.architectures else (cuda.architectures if cuda else [])
    if not promised:
        raise UsageError(
            f"target {options.target} promises no GPU architectures (targets.{options.target}.cuda.architectures)",
            hint=f"name some: `nox -s kernels -- {options.target} --architectures sm_75,sm_90`",
        )
    lock_kinds.check(project)
    engine.ensure(project.config.engine)
    folder = fetch_wheelhouse(options.target, graph.build_shared_images(project.config)[rc.ROLE])
    manifest = wheelhouse.read_manifest(options.target)
    if manifest is None:
        raise UsageError(f"the {options.target} wheelhouse has no manifest ({folder})")
    try:
        kernels.prove(options.target, promised, manifest, folder)
    except ValidationError as error:  # an architecture that is not sm_XY
        raise UsageError(f"--architectures {options.architectures}: {error.errors()[0]['msg']}") from None


def run_sbom(argv: list[str]) -> None:
    """Write a CycloneDX SBOM of a target's image, derived from the locks."""
    options = _target_parser("sbom").parse_args(argv)
    project = Project.load()
    lock_kinds.check(project)
    path = sbom.write(project.config, project.pipelines, options.target)
    print(f"hpsforge: wrote {path}", flush=True)


def run_images(argv: list[str]) -> None:
    """Verify every input against the locks, then build the graph of the named targets: base, rc,
    each runtime and one image per pipeline; record every digest once, at the end."""
    parser = _parser("images")
    parser.add_argument(
        "targets", nargs="*", type=_target_name, help="device targets whose runtime to build (cpu, gpu, gpu-cu118)"
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild from nothing: no cache, a fresh rootfs")
    parser.add_argument("--repository", help="also name the runtime REPOSITORY (e.g. registry:5000/hps/runtime-cpu)")
    parser.add_argument("--tag", help="also tag the runtime TAG (its default tag is the start of its input hash)")
    parser.add_argument("--revision", help="source revision label (makes the digest commit-specific)")
    parser.add_argument(
        "--push", metavar="REGISTRY/PREFIX", help="push every runtime and pipeline image there; record each by digest"
    )
    parser.add_argument("--sign", metavar="KEY", type=Path, help="sign every pushed image and its provenance with KEY")
    parser.add_argument("--passphrase-file", type=Path, help="KEY's passphrase (else $HPSFORGE_SIGNING_PASSPHRASE)")
    parser.add_argument("--cache-from", metavar="REF", help="read BuildKit's registry cache REF:<role>")
    parser.add_argument("--cache-to", metavar="REF", help="write BuildKit's registry cache REF:<role> (mode=max)")
    parser.add_argument("--builder", help="a `docker buildx` builder to build on (default: the engine's own)")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build even images already in the engine (with the caches; unlike --no-cache)",
    )
    options = parser.parse_args(argv)
    project = Project.load()
    config = project.config
    options.targets = list(dict.fromkeys(options.targets))  # `gpu gpu-cu12` is one target
    if (options.repository or options.tag) and len(options.targets) != 1:
        raise UsageError("--repository and --tag name one image: give exactly one target")
    if options.push and not options.targets:
        raise UsageError("--push pushes the targets' runtime and pipeline images: name the targets")
    prefix = registry.check_prefix(options.push) if options.push else None
    if options.sign and not prefix:
        raise UsageError("--sign signs the pushed images: add --push REGISTRY/PREFIX")
    # The key opens before anything is built: a wrong passphrase costs no build.
    private = signing.load_private(options.sign, signing.passphrase(options.passphrase_file)) if options.sign else None
    engine.ensure(config.engine)
    started = time.monotonic()
    backend = buildkit.Backend(
        builder=options.builder, cache_from=options.cache_from, cache_to=options.cache_to, reuse=not options.rebuild
    )
    walk = graph.BuildGraph.of(project, options.targets)
    built = walk.build(graph.BuildOptions(no_cache=options.no_cache, revision=options.revision, backend=backend))
    if options.repository or options.tag:
        target = options.targets[0]
        built[runtime.role(target)] = runtime.name(target, built[runtime.role(target)], options.repository, options.tag)
    standins = sorted(role for role, record in built.items() if gpu.is_standin_reference(record.reference))
    if prefix and standins:
        raise UsageError(
            f"{', '.join(standins)} carry stand-in cuDNN/TensorRT libraries (a test build): "
            "they are never pushed like a release",
            hint="put NVIDIA's tarballs in vendor_blobs/files and unset HPSFORGE_BLOB_MANIFEST",
        )
    # Parity before anything is recorded: a default engine that differs from Paddle is refused.
    for name, pipeline in project.pipelines.items():
        record = built.get(pipeline_images.role(name, "cpu"))
        if record is not None and any(model.converted_engines() for model in pipeline.models):
            parity.check(name, pipeline, record.reference)
    # A tool image that is not bit for bit (the converter) is not recorded: the record is what two
    # machines agree on, and the converter's outputs are locked by their own hashes.
    tools = {node.role for node in walk if not node.bit_for_bit}
    images_lock.ImagesLock.read().with_records(
        {role: record for role, record in built.items() if role not in standins and role not in tools}
    ).write()
    print(
        f"hpsforge: images built in {time.monotonic() - started:.1f} s; digests recorded in "
        f"{images_lock.images_lock_path()}"
        + (f" (not the stand-in builds: {', '.join(standins)})" if standins else ""),
        flush=True,
    )
    for role, record in built.items():
        compressed = docker.image.inspect(record.reference).size
        unpacked = sizes.unpacked_size(record)
        print(
            f"  {role:30} {record.reference:46} {record.digest}  "
            f"{unpacked / 1e9:.2f} GB unpacked, {compressed / 1e9:.2f} GB compressed",
            flush=True,
        )
    statements = provenance.write_statements(project, options.targets, built)
    if prefix:
        release.push_and_sign(built, prefix, statements, (provenance.PAYLOAD_TYPE, provenance.PREDICATE_TYPE), private)


def run_archive(argv: list[str]) -> None:
    """export DIR: every locked input into an input archive; import DIR: prove and seed the store."""
    parser = _parser("archive")
    parser.add_argument("action", choices=["export", "import"])
    parser.add_argument("folder", nargs="?", type=Path, help="the archive folder")
    parser.add_argument(
        "--include-blobs",
        action="store_true",
        help="export the vendor blobs too (their licences forbid redistribution)",
    )
    parser.add_argument("--push", metavar="REF", help="after export, push the archive to an OCI registry")
    parser.add_argument("--pull", metavar="REF", help="before import, pull the archive from an OCI registry")
    parser.add_argument(
        "--target",
        action="append",
        type=_target_name,
        metavar="TARGET",
        help="export only this device target's own wheels and blobs (repeatable; default: all)",
    )
    options = parser.parse_intermixed_args(argv)
    if options.action == "export":
        if options.folder is None or options.pull:
            raise UsageError(
                "export writes a folder: `nox -s archive -- export DIR [--target cpu] [--include-blobs] [--push REF]`"
            )
        project, store = Project.load(), ContentStore()

        def shared_images() -> dict[str, images_lock.ImageRecord]:  # only when the store lacks a wheelset
            engine.ensure(project.config.engine)
            return graph.build_shared_images(project.config)

        archive.export(
            project,
            options.folder,
            ImageWheelsets(shared_images, store),
            include_blobs=options.include_blobs,
            targets=options.target,
        )
        if options.push:
            from hpsforge.ship import oci_archive

            oci_archive.push(options.folder, options.push)
        return
    if options.push or options.include_blobs or options.target:
        raise UsageError("import reads a folder: `nox -s archive -- import DIR` or `-- import --pull REF [DIR]`")
    if options.pull:
        from hpsforge.ship import oci_archive

        with tempfile.TemporaryDirectory(prefix="pulled-", dir=scratch_dir()) as scratch:  # the store keeps it
            folder = options.folder or Path(scratch) / "archive"
            oci_archive.pull(options.pull, folder)
            archive.import_(folder)
        return
    if options.folder is None:
        raise UsageError("name the archive folder: `nox -s archive -- import DIR`")
    archive.import_(options.folder)


def run_host_lock(argv: list[str]) -> None:
    """Re-lock the host environment that ./noxw installs (pyproject.toml -> lock/host-requirements.txt)."""
    options = _parse("host-lock", argv, ("--upgrade", "re-resolve to the newest versions allowed"))
    host_lock.relock(upgrade=options.upgrade)


def run_lint(argv: list[str]) -> None:
    """The code's own checks: ruff (lint, format), mypy --strict, import-linter's contracts."""
    _parse("lint", argv)
    lint.check()


def run_docs(argv: list[str]) -> None:
    """Build the documentation site (docs/ and the generated reference) with `mkdocs build --strict`."""
    parser = _parser("docs")
    parser.add_argument("--mkdocs", type=Path, required=True, help="the mkdocs program (the session's virtualenv's)")
    parser.add_argument("--site-dir", type=Path, help="where the site goes (default output/site)")
    options = parser.parse_args(argv)
    site.build(options.mkdocs, options.site_dir)


def run_repro(argv: list[str]) -> None:
    """Rebuild every image of the targets' graph from nothing, compare each digest with the first
    build and the record, write output/repro/ (report.json, junit.xml); or compare two reports."""
    parser = _parser("repro")
    parser.add_argument("targets", nargs="*", type=_target_name, help="device targets (cpu, gpu, gpu-cu118)")
    parser.add_argument("--all", action="store_true", help="every target hpsforge.toml declares")
    parser.add_argument(
        "--from-archive", type=Path, metavar="DIR", help="rebuild from this input archive, imported into an empty store"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="name every image whose digest differs between two machines' reports",
    )
    parser.add_argument("--report-dir", type=Path, help="where the reports go (default output/repro)")
    parser.add_argument(
        "--attest", metavar="KEY", type=Path, help="sign a rebuild statement of each reproducible image"
    )
    parser.add_argument("--passphrase-file", type=Path, help="KEY's passphrase (else $HPSFORGE_SIGNING_PASSPHRASE)")
    parser.add_argument(
        "--push", metavar="REGISTRY/PREFIX", help="add the rebuild statements to the images' .att there"
    )
    parser.add_argument("--report", type=Path, metavar="R.json", help="attest this report instead of rebuilding")
    options = parser.parse_args(argv)
    if (options.push or options.report) and not options.attest:
        raise UsageError("--push and --report go with --attest KEY")
    private = (
        signing.load_private(options.attest, signing.passphrase(options.passphrase_file)) if options.attest else None
    )
    pushed_as = partial(registry.pushed_by_digest, prefix=registry.check_prefix(options.push)) if options.push else None
    if options.report:
        if options.targets or options.all or options.compare or options.from_archive:
            raise UsageError("--report attests an existing report: give no targets")
        prove_release.attest_rebuilds(
            repro.read_report(options.report),
            private,  # type: ignore[arg-type]  # --report goes with --attest: checked above
            pushed_as,
            options.report.parent,
            signing,
        )
        return
    if options.compare:
        if options.targets or options.all or options.from_archive:
            raise UsageError("--compare takes two reports and nothing else")
        comparison = repro.compare(*options.compare)
        print(
            "\n".join(comparison.lines())
            or "hpsforge: every image with the same inputs has the same digest on both machines"
        )
        if differing := comparison.differing():
            raise DigestMismatchError(
                f"{len(differing)} image(s) differ between "
                f"{options.compare[0]} and {options.compare[1]}: " + ", ".join(image.role for image in differing)
            )
        return
    project = Project.load()
    config = project.config
    targets = sorted(config.targets) if options.all else options.targets
    if not targets or (options.all and options.targets):
        raise UsageError(
            "name the targets to prove (e.g. `-- cpu`), or give --all",
            hint=f"targets: {', '.join(sorted(config.targets))}",
        )
    targets = list(dict.fromkeys(targets))  # `gpu gpu-cu12` is one target
    if options.from_archive:
        archive.read_index(options.from_archive)  # not an archive: say so before building anything
    engine.ensure(config.engine)
    started = time.monotonic()
    report_dir = options.report_dir or repro.default_report_dir()
    report = repro.run(
        graph.BuildGraph.of(project, targets), targets, from_archive=options.from_archive, report_dir=report_dir
    )
    print(
        f"\nhpsforge: repro of {', '.join(targets)} in {time.monotonic() - started:.0f} s "
        f"(report: {report_dir / 'report.json'}, {report_dir / 'junit.xml'})"
    )
    print(repro.summary(report), flush=True)
    if private is not None:
        prove_release.attest_rebuilds(report, private, pushed_as, report_dir, signing)
    repro.fail_on(report, report_dir)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _bench_engines(text: str) -> tuple[str | None, ...]:
    """`--engines`: None stands for each model's declared default."""
    known = list(get_args(Engine))
    names = [name.strip() for name in text.split(",")]
    if names == ["all"]:
        names = ["default", *known]
    unknown = [name for name in names if name != "default" and name not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise UsageError(f"--engines {text!r}: expected default, {', '.join(known)} or all, each once")
    return tuple(None if name == "default" else name for name in names)


def run_bench(argv: list[str]) -> serving_report.ServingReport | None:
    """Print rebuild figures for a target (cold, warm, code-only), or with --serving the serving
    benchmark of the pipelines (all, or the named ones): Triton beside in-process and Flask."""
    parser = _target_parser("bench")
    parser.add_argument("pipelines", nargs="*", help="with --serving: the pipelines to measure (default: all)")
    parser.add_argument("--serving", action="store_true", help="the serving benchmark instead of rebuild times")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per point (default 2)")
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="client counts (default 1,2,4,8,16)")
    parser.add_argument("--min-requests", type=int, default=20, help="stretch a point until this many answers")
    parser.add_argument("--protocols", default="http,grpc", help="Triton protocols (default http,grpc)")
    parser.add_argument("--no-flask", action="store_true", help="leave out the Flask+gunicorn baseline")
    parser.add_argument("--no-in-process", action="store_true", help="leave out the in-process baseline")
    parser.add_argument("--quick", action="store_true", help="one in-process and one Flask configuration (smoke run)")
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        type=_key_value,
        metavar="PIPELINE=IMAGE",
        help="also measure this Triton image of the pipeline, as 'before'",
    )
    parser.add_argument(
        "--triton-env",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="environment of the Triton containers (e.g. HPS_INSTANCES=1)",
    )
    parser.add_argument("--output", type=Path, help="where serving.json and serving.png go (default output/bench)")
    parser.add_argument(
        "--engines",
        default="default",
        help="with --serving: the engines each pipeline is measured on, comma-separated: default (each "
        "model's declared engine), paddle, onnxruntime, openvino, or all (default: default); an engine is "
        "set on every model that declares it, and skipped for a pipeline none of whose models does",
    )
    parser.add_argument(
        "--perf-analyzer",
        action="store_true",
        help="with --serving: cross-check each workload's HTTP figure at c=8 with Triton's perf_analyzer "
        "(lock/requirements/perf-analyzer.txt)",
    )
    parser.add_argument(
        "--registry-cache",
        metavar="REF",
        help="also time rebuilds with an empty local BuildKit cache, without and then reading REF "
        "(a registry cache); needs --prune-local-cache",
    )
    parser.add_argument(
        "--prune-local-cache",
        action="store_true",
        help="let --registry-cache empty the engine's WHOLE BuildKit cache (`docker buildx prune "
        "--all`, twice), other projects' builds included",
    )
    options = parser.parse_intermixed_args(argv)  # `cpu --serving OCR`: pipelines after the flag
    if options.registry_cache and not options.prune_local_cache:
        raise UsageError(
            "--registry-cache times rebuilds from an empty local BuildKit cache: it empties the "
            "engine's whole BuildKit cache (`docker buildx prune --all`), other projects' builds "
            "included",
            hint="add --prune-local-cache to allow that (say, on a build machine of its own)",
        )
    if options.prune_local_cache and not options.registry_cache:
        raise UsageError("--prune-local-cache goes with --registry-cache REF (nothing else prunes the cache)")
    project = Project.load()
    config = project.config
    config.target(options.target)
    engine.ensure(config.engine)
    if options.serving:
        try:
            levels = tuple(int(level) for level in options.concurrency.split(","))
        except ValueError:
            raise UsageError(f"--concurrency {options.concurrency!r}: expected numbers like 1,2,4,8,16") from None
        names = options.protocols.split(",")
        protocols = tuple(protocol for name in names for protocol in serving_report.PROTOCOLS if protocol == name)
        if len(protocols) != len(names) or len(set(names)) != len(names):
            raise UsageError(f"--protocols {options.protocols!r}: expected http, grpc or both (http,grpc)")
        pipelines = select(project.pipelines, options.pipelines) if options.pipelines else project.pipelines
        unknown = [name for name, _ in options.before if name not in pipelines]
        if unknown:
            raise UsageError(f"--before names pipelines not measured: {', '.join(unknown)}")
        output = options.output or serving_report.default_output_dir()
        engines = _bench_engines(options.engines)
        if options.perf_analyzer and "http" not in protocols:
            raise UsageError("--perf-analyzer checks the HTTP figures: keep http in --protocols")
        bench_options = serving_measure.BenchOptions(
            seconds=options.seconds,
            warmup=options.warmup,
            concurrency=levels,
            min_requests=options.min_requests,
            flask=not options.no_flask,
            in_process=not options.no_in_process,
            quick=options.quick,
            protocols=protocols,
            before=dict(options.before),
            triton_env=dict(options.triton_env),
            output=output,
            perf_analyzer=perf_analyzer.install(config.engine) if options.perf_analyzer else None,
            engines=engines,
        )
        report = serving_measure.run(project, pipelines, options.target, bench_options)
        print("\n" + serving_report.table(report))
        print(
            f"\nhpsforge: wrote {output / serving_report.REPORT} and {output / serving_report.PLOT} "
            f"in {report.seconds:.0f} s",
            flush=True,
        )
        return report
    if options.pipelines:
        raise UsageError("pipelines are named only with --serving")
    if options.perf_analyzer:
        raise UsageError("--perf-analyzer goes with --serving")
    figures = rebuild.rebuild(project, options.target)
    if options.registry_cache:
        figures += rebuild.registry_cache(project, options.target, options.registry_cache)
    print("\nrebuild benchmark")
    for label, seconds in figures:
        print(f"  {label:50} {seconds:7.1f} s")
    return None


def _pipeline_names(parser: _Parser, verb: str) -> None:
    parser.add_argument("names", nargs="*", help=f"pipelines to {verb} (folder names under pipelines/)")
    parser.add_argument("--all", action="store_true", help="every pipeline")


def _chosen_pipelines(project: Project, options: argparse.Namespace, verb: str) -> dict[str, Pipeline]:
    """The pipelines named, or every one with --all; naming none, or both, is a usage error."""
    pipelines = project.pipelines
    if options.all == bool(options.names):
        raise UsageError(
            f"name the pipelines to {verb}, or give --all (not both)", hint=f"known pipelines: {', '.join(pipelines)}"
        )
    return pipelines if options.all else select(pipelines, options.names)


def run_new_pipeline(argv: list[str]) -> None:
    """Write pipelines/<Name>/ for a Paddle model folder; with --record-goldens, build its image and
    record the model's answer to a seeded request as its goldens."""
    parser = _parser("new-pipeline")
    parser.add_argument("name", help="the new pipeline's name (its folder under pipelines/)")
    parser.add_argument("--model", required=True, type=Path, help="the folder paddle.jit.save wrote the model into")
    parser.add_argument(
        "--kind",
        default="tensor",
        help="tensor (named tensors in and out; default), classification (image in, top-k out), "
        "detection (image in, boxes out: a PaddleDetection export) or ocr-like (text line in, text out)",
    )
    parser.add_argument(
        "--dict",
        type=Path,
        default=None,
        help="ocr-like: the character dictionary the model was trained with (one character a line)",
    )
    parser.add_argument(
        "--record-goldens", action="store_true", help="build the pipeline image and record its answer as the goldens"
    )
    options = parser.parse_args(argv)
    project = Project.load()
    engine.ensure(project.config.engine)
    made = new_pipeline.create(
        project,
        options.name,
        options.model,
        options.kind,
        record_goldens=options.record_goldens,
        dictionary_file=options.dict,
    )
    print(f"hpsforge: wrote {made.folder}/ in {made.seconds:.1f} s", flush=True)
    if made.image:
        print(f"hpsforge: {options.name}: serving image {made.image.reference} ({made.image.digest})", flush=True)
    print(
        "hpsforge: next: `./noxw -s images -- cpu`, `./noxw -s conformance -- "
        f"{options.name}`, `./noxw -s assemble -- {options.name}`",
        flush=True,
    )


def run_assemble(argv: list[str]) -> None:
    """Write each named pipeline's SDK bundle (server + client) to output/<Name>_sdk[.tar.gz]."""
    parser = _parser("assemble")
    _pipeline_names(parser, "assemble")
    parser.add_argument("--no-server", action="store_true", help="leave out server/")
    parser.add_argument("--no-client", action="store_true", help="leave out client/")
    options = parser.parse_args(argv)
    project = Project.load()
    chosen = _chosen_pipelines(project, options, "assemble")
    if options.no_server and options.no_client:
        raise UsageError("--no-server and --no-client together leave nothing to assemble")
    lock_kinds.check(project)
    for name, pipeline in chosen.items():
        started = time.monotonic()
        folder = assemble.assemble(
            name,
            pipeline,
            project.config.base.source_date_epoch,
            server=not options.no_server,
            client=not options.no_client,
            converter=converter.LazyConverter(project.config),  # only for converted files the store lacks
        )
        print(
            f"hpsforge: {name}: wrote {folder}/ and {folder.name}.tar.gz in {time.monotonic() - started:.1f} s",
            flush=True,
        )


def run_serve(argv: list[str]) -> None:
    """Start a pipeline's image (built by `nox -s images`) and print its addresses."""
    parser = _parser("serve")
    parser.add_argument("name", help="the pipeline (folder name under pipelines/)")
    parser.add_argument("--target", default="cpu", type=_target_name, help="whose image to run (default cpu)")
    parser.add_argument("--host", default="127.0.0.1", help="host address to publish on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument(
        "--image",
        metavar="NAME@sha256:DIGEST",
        help="pull and run exactly this image (e.g. the `pushed` reference of the record)",
    )
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="[MODEL=]ENGINE",
        help="paddle, onnxruntime or openvino for every model declaring it, or MODEL=ENGINE for one (repeatable)",
    )
    options = parser.parse_args(argv)
    project = Project.load()
    chosen = select(project.pipelines, [options.name])
    overrides = ship_engines.overrides(options.name, chosen[options.name], options.engine)
    project.config.target(options.target)
    engine.ensure(project.config.engine)
    image = registry.pull(options.image) if options.image else None
    serve.start(
        options.name,
        options.target,
        options.host,
        {"http": options.http_port, "grpc": options.grpc_port, "metrics": options.metrics_port},
        image=image,
        engines=overrides,
    )


def run_conformance(argv: list[str]) -> None:
    """Run the conformance suite on the pipeline images (or a running endpoint) and print the table."""
    parser = _parser("conformance")
    parser.add_argument("pipelines", nargs="*", help="pipelines to check (default: all)")
    parser.add_argument("--url", help="HTTP HOST:PORT of a running server (then name one pipeline)")
    parser.add_argument("--grpc-url", help="its gRPC HOST:PORT (default: the HTTP port + 1)")
    parser.add_argument("--metrics-url", help="its metrics HOST:PORT (default: the HTTP port + 2)")
    parser.add_argument("--target", default="cpu", type=_target_name, help="whose images to start (default cpu)")
    options = parser.parse_args(argv)
    project = Project.load()
    select(project.pipelines, options.pipelines)
    if options.url and len(options.pipelines) != 1:
        raise UsageError(
            "--url checks one running server: name its pipeline, e.g. `nox -s conformance -- OCR --url host:8000`"
        )
    config = project.config
    config.target(options.target)
    if not options.url:
        engine.ensure(config.engine)
    started = time.monotonic()
    checked = conformance.run(
        options.pipelines,
        url=options.url,
        grpc_url=options.grpc_url,
        metrics_url=options.metrics_url,
        target=options.target,
    )
    print("\n" + conformance.table(checked.results))
    print(
        f"\nhpsforge: conformance ran {len(checked.results)} check(s) in {time.monotonic() - started:.0f} s", flush=True
    )
    if not checked.passed:
        raise HpsforgeError("conformance failed: see the FAILED lines above")


def run_deploy(argv: list[str]) -> None:
    """Write Kubernetes (--kubernetes) and KServe (--kserve) manifests of pipeline images to output/deploy/<Name>/,
    and with --policy --key PUB.pem the admission policies that admit them only when signed with that key."""
    from hpsforge.ship import admission, deploy

    parser = _parser("deploy")
    _pipeline_names(parser, "deploy")
    parser.add_argument(
        "--kubernetes", action="store_true", help="Deployment, Service, PodDisruptionBudget, autoscaler"
    )
    parser.add_argument("--kserve", action="store_true", help="KServe ServingRuntime + InferenceService")
    parser.add_argument("--image", help="REPOSITORY@sha256:... to run (default: the digest in lock/images.lock.json)")
    parser.add_argument("--target", default="cpu", type=_target_name, help="whose image (default cpu)")
    parser.add_argument("--output", type=Path, help="where <Name>/ folders go (default output/deploy)")
    parser.add_argument(
        "--policy",
        action="store_true",
        help="admission policies (policy-controller, Kyverno) admitting the image only when signed with --key",
    )
    parser.add_argument("--key", type=Path, help="the release public key for --policy (PEM, ECDSA P-256: PREFIX.pub)")
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="[MODEL=]ENGINE",
        help="paddle, onnxruntime or openvino for every model declaring it, or MODEL=ENGINE for one (repeatable)",
    )
    options = parser.parse_args(argv)
    project = Project.load()
    chosen = _chosen_pipelines(project, options, "deploy")
    kinds = tuple(kind for kind in deploy.KINDS if getattr(options, kind))
    if not kinds:
        raise UsageError("say what to write: --kubernetes, --kserve or both (--policy adds to them)")
    if options.policy and options.key is None:
        raise UsageError(
            "--policy needs --key PUB.pem: the release public key the policies admit signatures of",
            hint="e.g. --policy --key release.pub (the .pub that `skopeo generate-sigstore-key` writes)",
        )
    if options.key is not None and not options.policy:
        raise UsageError("--key is the key of --policy: give --policy too, or leave --key out")
    if options.image and len(chosen) != 1:
        raise UsageError("--image names one pipeline's image: name exactly one pipeline")
    engine_overrides = {
        name: ship_engines.overrides(name, pipeline, options.engine) for name, pipeline in chosen.items()
    }
    project.config.target(options.target)
    image = deploy.check_image(options.image) if options.image else None
    key = admission.ReleaseKey.read(options.key) if options.policy else None
    if key is not None:
        # Every pipeline's image must be one a policy can name before any folder is written.
        for name in chosen:
            admission.repository(image or deploy.recorded_image(name, options.target))
    for name, pipeline in chosen.items():
        deploy.deploy(name, pipeline, options.target, kinds, image, options.output, key, engine_overrides[name])
