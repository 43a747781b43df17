"""Per-target pip locks, compiled with pip-tools inside the rc image.

The rc image has the images' own Python and platform, so the lock resolves exactly what the
images can install. Inputs: [python] common + [targets.<t>] requirements + every pipeline's.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tomli
from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from hpsforge import buildkit, requirements_lock
from hpsforge.config import IMAGE_PYTHON, LOCK_DIR, PROJECT_ROOT, ProjectConfig
from hpsforge.errors import HpsforgeError
from hpsforge.files import canonical_json, sha256_bytes
from hpsforge.pipelines import Pipeline
from hpsforge.store import cache_root, scratch_dir

REQUIREMENTS_DIR = LOCK_DIR / "requirements"
CLIENT = "client"  # lock/requirements/client.txt: the client package's dependencies
CLIENT_PROJECT = PROJECT_ROOT / "sdk" / "client"
# lock/requirements/bench.txt: the serving benchmark's tools (bench images only, never a release)
BENCH = "bench"
BENCH_REQUIREMENTS = PROJECT_ROOT / "bench" / "requirements.in"
BENCH_BASE_TARGET = "cpu"  # the bench images are pipeline images of this target plus the bench lock
CA_IN_CONTAINER = "/run/secrets/ca-bundle"


def lock_path(target: str) -> Path:
    return REQUIREMENTS_DIR / f"{target}.txt"


def refresh_command(target: str) -> str:
    return f"nox -s freeze -- {target}"


def declared_requirements(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str) -> list[str]:
    """What the target's image must hold, before resolution: sorted and unique."""
    wanted = [*config.python.common, *config.target(target).requirements]
    for pipeline in pipelines.values():
        wanted += pipeline.requirements
    return sorted(set(wanted), key=lambda requirement: (requirement.lower(), requirement))


def declaration_sha256(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str) -> str:
    return sha256_bytes(canonical_json(declared_requirements(config, pipelines, target)).encode())


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


def _essential(lines: list[str]) -> list[str]:
    """A tool's failure output without Python traceback frames: the lines that say what failed."""
    kept, in_traceback = [], False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
            continue
        if in_traceback and (line[:1].isspace() or not line.strip()):
            continue
        in_traceback = False
        if line.strip() and not line.startswith(("The above exception", "During handling")):
            kept.append(line)
    return kept[-15:]


def run_in_rc(rc_image: buildkit.ImageRecord, command: list[str], workdir: Path, *,
              failure_hint: str | None = None) -> list[str]:
    """Run `command` in the rc image with `workdir` at /work, pip's and pip-tools' caches kept
    across runs and the host CA bundle mounted read-only (never copied); stream its output."""
    tool_cache = cache_root() / "rc-cache"
    tool_cache.mkdir(parents=True, exist_ok=True)
    volumes = [(str(workdir), "/work", "rw"), (str(tool_cache), "/root/.cache", "rw")]
    envs = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if bundle := buildkit.host_ca_bundle():
        volumes.append((str(bundle), CA_IN_CONTAINER, "ro"))
        envs["PIP_CERT"] = CA_IN_CONTAINER
    lines: list[str] = []
    try:
        for _source, chunk in docker.run(rc_image.reference, command, volumes=volumes, envs=envs,
                                         workdir="/work", remove=True, stream=True):
            text = chunk.decode(errors="replace")
            print(text, end="", flush=True)
            lines += text.splitlines()
    except DockerException as error:
        summary = "\n    ".join(_essential(lines)) or (error.stderr or "").strip()
        raise HpsforgeError(f"`{command[0]}` failed in the rc image (exit {error.return_code}):\n    {summary}",
                            hint=failure_hint) from None
    return lines


def client_requirements() -> list[str]:
    """The client package's dependencies (sdk/client/pyproject.toml), sorted."""
    path = CLIENT_PROJECT / "pyproject.toml"
    try:
        dependencies = tomli.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]
    except (OSError, KeyError, tomli.TOMLDecodeError) as error:
        raise HpsforgeError(f"{path}: cannot read [project] dependencies ({error})") from None
    return sorted(set(dependencies), key=lambda requirement: (requirement.lower(), requirement))


def client_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(client_requirements()).encode())


def compile_client_lock(rc_image: buildkit.ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/client.txt: what an SDK bundle's client installs."""
    title = (f"pip requirements of the client package (sdk/client), compiled with pip-tools in the rc "
             f"image (CPython {IMAGE_PYTHON}); the SDK bundles ship it as client/requirements.txt.")
    return _compile(CLIENT, client_requirements(), client_declaration_sha256(), title, rc_image, options,
                    "the client's dependencies in sdk/client/pyproject.toml cannot be resolved together")


def bench_requirements() -> list[str]:
    """The requirement lines of bench/requirements.in, sorted."""
    try:
        lines = BENCH_REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise HpsforgeError(f"{BENCH_REQUIREMENTS}: cannot be read ({error.strerror or error})") from None
    wanted = [line.split("#", 1)[0].strip() for line in lines]
    return sorted({line for line in wanted if line}, key=lambda requirement: (requirement.lower(), requirement))


def bench_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(bench_requirements()).encode())


def compile_bench_lock(rc_image: buildkit.ImageRecord, options: IndexOptions, base_lock_text: str | None = None) -> str:
    """The text of a fresh lock/requirements/bench.txt. It is installed on top of a pipeline image
    of the cpu target, so every package the two share is held at the cpu lock's version."""
    text = base_lock_text if base_lock_text is not None else lock_path(BENCH_BASE_TARGET).read_text(encoding="utf-8")
    base = requirements_lock.parse(text, lock_path(BENCH_BASE_TARGET))
    constraints = "".join(f"{requirement.name}=={requirement.version}\n" for requirement in base.requirements)
    title = (f"pip requirements of the serving benchmark's tools (bench/requirements.in), compiled with pip-tools "
             f"in the rc image (CPython {IMAGE_PYTHON}) under the {BENCH_BASE_TARGET} lock's versions; "
             "installed in the bench images only.")
    return _compile(BENCH, bench_requirements(), bench_declaration_sha256(), title, rc_image, options,
                    "the benchmark's tools in bench/requirements.in cannot be resolved together with the "
                    f"{BENCH_BASE_TARGET} lock's versions", constraints=constraints)


def shared_pin_differences(bench_lock: Path, base_lock: Path) -> list[str]:
    """Packages both locks pin at different versions (the bench image would not run the pipeline
    image's own packages)."""
    base = requirements_lock.read(base_lock).by_name()
    return [f"{name}: {requirement.version} in {bench_lock.name}, {base[name].version} in {base_lock.name}"
            for name, requirement in requirements_lock.read(bench_lock).by_name().items()
            if name in base and base[name].version != requirement.version]


def compile_lock(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str,
                 rc_image: buildkit.ImageRecord, options: IndexOptions) -> str:
    """The text of a fresh lock/requirements/<target>.txt; nothing is written here."""
    title = (f"pip requirements of the {target} target, compiled with pip-tools in the rc image "
             f"(CPython {IMAGE_PYTHON}, {config.base.architecture}).")
    return _compile(target, declared_requirements(config, pipelines, target),
                    declaration_sha256(config, pipelines, target), title, rc_image, options,
                    f"the requirements of the {target} target cannot be resolved together; "
                    "check [python], [targets] in hpsforge.toml and the pipelines' requirements")


def _compile(target: str, wanted: list[str], declaration: str, title: str,
             rc_image: buildkit.ImageRecord, options: IndexOptions, failure_hint: str,
             constraints: str | None = None) -> str:
    print(f"hpsforge: compiling the {target} lock ({len(wanted)} requirements) in {rc_image.reference}",
          flush=True)
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
        run_in_rc(rc_image, [
            "pip-compile", "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--no-emit-index-url", "--no-emit-trusted-host", "--no-header", "--resolver=backtracking",
            *options.pip_arguments(), *constraint_arguments, "--output-file", output.name, f"{target}.in",
        ], work, failure_hint=failure_hint)
        compiled = output.read_text()
    return requirements_lock.header(title, declaration) + compiled
