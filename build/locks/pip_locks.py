"""The pip locks: one per device target, the client's, the benchmark's, the documentation's and the converter's; where
each lives and the declaration it is resolved from (freeze/pip_compile.py compiles them in the rc image)."""

from __future__ import annotations

from pathlib import Path

import tomli

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import canonical_json, sha256_bytes
from hpsforge.core.pipelines import Pipeline
from hpsforge.core.settings import settings
from hpsforge.locks import requirements_lock

CLIENT = "client"  # lock/requirements/client.txt: the client package's dependencies
# lock/requirements/bench.txt: the serving benchmark's tools (bench images only, never a release)
BENCH = "bench"
BENCH_BASE_TARGET = "cpu"  # the bench images are pipeline images of this target plus the bench lock
# lock/requirements/docs.txt: MkDocs and its theme, installed into `nox -s docs`'s own virtualenv only
DOCS = "docs"
# lock/requirements/convert.txt: paddle2onnx, OpenVINO and the Paddle they read, in the converter image only
CONVERT = "convert"
# lock/requirements/perf-analyzer.txt: Triton's perf_analyzer (in an old tritonclient wheel), in a host
# virtualenv of its own for the bench's cross-check
PERF_ANALYZER = "perf-analyzer"


def rc_lock_path() -> Path:
    """lock/rc-requirements.txt: the rc image's tools (pinned by hashin, not compiled)."""
    return settings().lock_dir / "rc-requirements.txt"


def host_lock_path() -> Path:
    """lock/host-requirements.txt: the host environment ./noxw installs (from pyproject.toml)."""
    return settings().lock_dir / "host-requirements.txt"


def client_project() -> Path:
    return settings().root / "sdk" / "client"


def bench_requirements_file() -> Path:
    return settings().root / "bench" / "requirements.in"


def docs_requirements_file() -> Path:
    return settings().root / "docs" / "requirements.in"


def convert_requirements_file() -> Path:
    return settings().root / "converter" / "requirements.in"


def perf_analyzer_requirements_file() -> Path:
    return settings().root / "bench" / "perf-analyzer.in"


def lock_path(target: str) -> Path:
    return settings().requirements_dir / f"{target}.txt"


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


def client_requirements() -> list[str]:
    """The client package's dependencies (sdk/client/pyproject.toml), sorted."""
    path = client_project() / "pyproject.toml"
    try:
        dependencies = tomli.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]
    except (OSError, KeyError, tomli.TOMLDecodeError) as error:
        raise HpsforgeError(f"{path}: cannot read [project] dependencies ({error})") from None
    return sorted(set(dependencies), key=lambda requirement: (requirement.lower(), requirement))


def client_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(client_requirements()).encode())


def bench_requirements() -> list[str]:
    """The requirement lines of bench/requirements.in, sorted."""
    return _requirement_lines(bench_requirements_file())


def bench_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(bench_requirements()).encode())


def docs_requirements() -> list[str]:
    """The requirement lines of docs/requirements.in, sorted."""
    return _requirement_lines(docs_requirements_file())


def docs_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(docs_requirements()).encode())


def convert_requirements() -> list[str]:
    """The requirement lines of converter/requirements.in, sorted."""
    return _requirement_lines(convert_requirements_file())


def convert_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(convert_requirements()).encode())


def perf_analyzer_requirements() -> list[str]:
    """The requirement lines of bench/perf-analyzer.in, sorted."""
    return _requirement_lines(perf_analyzer_requirements_file())


def perf_analyzer_declaration_sha256() -> str:
    return sha256_bytes(canonical_json(perf_analyzer_requirements()).encode())


def _requirement_lines(path: Path) -> list[str]:
    """A requirements.in file's requirements (comments and blank lines dropped), sorted and unique."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise HpsforgeError(f"{path}: cannot be read ({error.strerror or error})") from None
    wanted = [line.split("#", 1)[0].strip() for line in lines]
    return sorted({line for line in wanted if line}, key=lambda requirement: (requirement.lower(), requirement))


def shared_pin_differences(bench_lock: Path, base_lock: Path) -> list[str]:
    """Packages both locks pin at different versions (the bench image would not run the pipeline
    image's own packages)."""
    base = requirements_lock.read(base_lock).by_name()
    return [
        f"{name}: {requirement.version} in {bench_lock.name}, {base[name].version} in {base_lock.name}"
        for name, requirement in requirements_lock.read(bench_lock).by_name().items()
        if name in base and base[name].version != requirement.version
    ]
