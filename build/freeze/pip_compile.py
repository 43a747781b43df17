"""Per-target pip locks, compiled with pip-tools inside the rc image.

The rc image has the images' own Python and platform, so the lock resolves exactly what the
images can install. Inputs: [python] common + [targets.<t>] requirements + every pipeline's.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core.config import ProjectConfig
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.settings import IMAGE_PYTHON
from hpsforge.images.containers import run_in_rc
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks import requirements_lock
from hpsforge.locks.images_lock import ImageRecord
from hpsforge.locks.pip_locks import (
    BENCH,
    BENCH_BASE_TARGET,
    CLIENT,
    CONVERT,
    DOCS,
    PERF_ANALYZER,
    bench_declaration_sha256,
    bench_requirements,
    client_declaration_sha256,
    client_requirements,
    convert_declaration_sha256,
    convert_requirements,
    declaration_sha256,
    declared_requirements,
    docs_declaration_sha256,
    docs_requirements,
    lock_path,
    perf_analyzer_declaration_sha256,
    perf_analyzer_requirements,
)


@dataclass(frozen=True)
class IndexOptions:
    """Where pip-compile looks; never written into the lock (--no-emit-index-url)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    upgrade: bool = False

    def pip_arguments(self) -> list[str]:
        arguments = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            arguments += ["--extra-index-url", url]
        return arguments + (["--upgrade"] if self.upgrade else [])


def compile_client_lock(rc_image: ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/client.txt: what an SDK bundle's client installs."""
    title = (
        f"pip requirements of the client package (sdk/client), compiled with pip-tools in the rc "
        f"image (CPython {IMAGE_PYTHON}); the SDK bundles ship it as client/requirements.txt."
    )
    return _compile(
        CLIENT,
        client_requirements(),
        client_declaration_sha256(),
        title,
        rc_image,
        options,
        "the client's dependencies in sdk/client/pyproject.toml cannot be resolved together",
    )


def compile_bench_lock(rc_image: ImageRecord, options: IndexOptions, base_lock_text: str | None = None) -> str:
    """The text of a fresh lock/requirements/bench.txt. It is installed on top of a pipeline image
    of the cpu target, so every package the two share is held at the cpu lock's version."""
    text = base_lock_text if base_lock_text is not None else lock_path(BENCH_BASE_TARGET).read_text(encoding="utf-8")
    base = requirements_lock.parse(text, lock_path(BENCH_BASE_TARGET))
    constraints = "".join(f"{requirement.name}=={requirement.version}\n" for requirement in base.requirements)
    title = (
        f"pip requirements of the serving benchmark's tools (bench/requirements.in), compiled with pip-tools "
        f"in the rc image (CPython {IMAGE_PYTHON}) under the {BENCH_BASE_TARGET} lock's versions; "
        "installed in the bench images only."
    )
    return _compile(
        BENCH,
        bench_requirements(),
        bench_declaration_sha256(),
        title,
        rc_image,
        options,
        "the benchmark's tools in bench/requirements.in cannot be resolved together with the "
        f"{BENCH_BASE_TARGET} lock's versions",
        constraints=constraints,
    )


def compile_docs_lock(rc_image: ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/docs.txt: what `nox -s docs` installs to build the site."""
    title = (
        f"pip requirements of the documentation site (docs/requirements.in), compiled with pip-tools in the rc "
        f"image (CPython {IMAGE_PYTHON}); installed into the docs session's own virtualenv only."
    )
    return _compile(
        DOCS,
        docs_requirements(),
        docs_declaration_sha256(),
        title,
        rc_image,
        options,
        "the documentation's tools in docs/requirements.in cannot be resolved together",
    )


def compile_convert_lock(rc_image: ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/convert.txt: what the converter image installs."""
    title = (
        f"pip requirements of the model converter (converter/requirements.in), compiled with pip-tools in the rc "
        f"image (CPython {IMAGE_PYTHON}); installed in the converter image only."
    )
    return _compile(
        CONVERT,
        convert_requirements(),
        convert_declaration_sha256(),
        title,
        rc_image,
        options,
        "the converter's tools in converter/requirements.in cannot be resolved together",
    )


def compile_perf_analyzer_lock(rc_image: ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/perf-analyzer.txt: the bench's cross-check tool."""
    title = (
        f"pip requirements of Triton's perf_analyzer (bench/perf-analyzer.in), compiled with pip-tools in the "
        f"rc image (CPython {IMAGE_PYTHON}); installed into a host virtualenv of its own by the serving bench."
    )
    return _compile(
        PERF_ANALYZER,
        perf_analyzer_requirements(),
        perf_analyzer_declaration_sha256(),
        title,
        rc_image,
        options,
        "perf_analyzer's wheel in bench/perf-analyzer.in cannot be resolved",
    )


def compile_lock(
    config: ProjectConfig, pipelines: dict[str, Pipeline], target: str, rc_image: ImageRecord, options: IndexOptions
) -> str:
    """The text of a fresh lock/requirements/<target>.txt; nothing is written here."""
    title = (
        f"pip requirements of the {target} target, compiled with pip-tools in the rc image "
        f"(CPython {IMAGE_PYTHON}, {config.base.architecture})."
    )
    return _compile(
        target,
        declared_requirements(config, pipelines, target),
        declaration_sha256(config, pipelines, target),
        title,
        rc_image,
        options,
        f"the requirements of the {target} target cannot be resolved together; "
        "check [python], [targets] in hpsforge.toml and the pipelines' requirements",
    )


def _compile(
    target: str,
    wanted: list[str],
    declaration: str,
    title: str,
    rc_image: ImageRecord,
    options: IndexOptions,
    failure_hint: str,
    constraints: str | None = None,
) -> str:
    print(f"hpsforge: compiling the {target} lock ({len(wanted)} requirements) in {rc_image.reference}", flush=True)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix=f"compile-{target}-", dir=scratch) as tmp:
        work = Path(tmp)
        (work / f"{target}.in").write_text("\n".join(wanted) + "\n")
        output = work / f"{target}.txt"
        if lock_path(target).exists() and not options.upgrade:
            shutil.copyfile(lock_path(target), output)  # keep current pins where still allowed
        constraint_arguments = []
        if constraints is not None:
            (work / "constraints.txt").write_text(constraints)
            constraint_arguments = ["--constraint", "constraints.txt"]
        run_in_rc(
            rc_image,
            [
                "pip-compile",
                "--quiet",
                "--generate-hashes",
                "--allow-unsafe",
                "--strip-extras",
                "--no-emit-index-url",
                "--no-emit-trusted-host",
                "--no-header",
                "--resolver=backtracking",
                *options.pip_arguments(),
                *constraint_arguments,
                "--output-file",
                output.name,
                f"{target}.in",
            ],
            work,
            failure_hint=failure_hint,
        )
        compiled = output.read_text()
    return requirements_lock.header(title, declaration) + compiled
