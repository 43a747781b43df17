"""A pure-Python wheel written byte for byte the same every time (fixed times, sorted entries).

Used for the client package, so the SDK bundles that carry it are reproducible too; it reads the
same pyproject.toml `pip install sdk/client` uses.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zipfile
from pathlib import Path

import tomli
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_output

EXCLUDED_PARTS = {"__pycache__", "tests"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata(project: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def build(project_dir: Path, destination: Path, epoch: int) -> Path:
    """Write <dist>-<version>-py3-none-any.whl for the package in `project_dir` to `destination`."""
    pyproject = project_dir / "pyproject.toml"
    try:
        project = tomli.loads(pyproject.read_text(encoding="utf-8"))["project"]
        name, version = project["name"], project["version"]
    except (OSError, KeyError, tomli.TOMLDecodeError) as error:
        raise HpsforgeError(f"{pyproject}: cannot read [project] name and version ({error})") from None
    dist = name.replace("-", "_")
    source_root = project_dir / "src" if (project_dir / "src" / dist).is_dir() else project_dir
    package = source_root / dist
    if not (package / "__init__.py").exists():
        raise HpsforgeError(f"{project_dir}: no package {dist}/ (or src/{dist}/) with an __init__.py")
    files = {}
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(source_root)
        if path.is_file() and not EXCLUDED_PARTS & set(relative.parts) and path.suffix != ".pyc":
            files[relative.as_posix()] = path.read_bytes()
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = _metadata(project).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: hpsforge\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    scripts = project.get("scripts", {})
    if scripts:
        entries = "".join(f"{script} = {target}\n" for script, target in sorted(scripts.items()))
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{entries}".encode()
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip times start in 1980
    wheel = destination / f"{dist}-{version}-py3-none-any.whl"
    with atomic_output(wheel) as stream, zipfile.ZipFile(stream, "w") as archive:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return wheel
