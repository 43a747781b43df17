"""pip requirement locks: the format shared by lock/rc-requirements.txt and lock/requirements/*.txt.

Every lock starts with a header naming the command that writes it and the sha256 of the
declaration it came from; every requirement is `name==version` with one or more sha256 hashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core.errors import StaleLockError

INPUT_HEADER = "# input-sha256: "
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:(?P<hash>[0-9a-f]{64})\b")


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: 'PyYAML' and 'pyyaml', 'pip_tools' and 'pip-tools' are one name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockedRequirement:
    name: str
    version: str
    hashes: frozenset[str]


@dataclass(frozen=True)
class RequirementsLock:
    path: Path
    input_sha256: str | None
    requirements: tuple[LockedRequirement, ...]

    def by_name(self) -> dict[str, LockedRequirement]:
        return {canonical_name(r.name): r for r in self.requirements}


def header(title: str, input_sha256: str) -> str:
    return (
        f"# {title}\n"
        "# Written by `nox -s freeze`; do not edit: change the declaration and re-run the freeze.\n"
        f"{INPUT_HEADER}{input_sha256}\n"
    )


def read(path: Path) -> RequirementsLock:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StaleLockError(f"{path}: lock file missing", hint="create it with `nox -s freeze`") from None
    return parse(text, path)


def parse(text: str, path: Path) -> RequirementsLock:
    """Parse a requirements lock; a line that is neither a pin, a hash nor a comment is an error."""
    input_sha256 = None
    entries: list[tuple[str, str, set[str]]] = []
    for number, logical in _logical_lines(text):
        stripped = logical.strip()
        if stripped.startswith(INPUT_HEADER.strip()):
            input_sha256 = stripped.removeprefix(INPUT_HEADER.strip()).strip()
            continue
        if not stripped or stripped.startswith("#"):
            continue
        pin = _PIN.match(stripped)
        if pin is None:
            raise StaleLockError(
                f"{path}:{number}: not a pinned requirement: {stripped[:80]!r}",
                hint="restore the lock from git or rewrite it with `nox -s freeze`",
            )
        entries.append((pin["name"], pin["version"], set(_HASH.findall(stripped))))
    requirements = tuple(LockedRequirement(n, v, frozenset(h)) for n, v, h in entries)
    return RequirementsLock(path=path, input_sha256=input_sha256, requirements=requirements)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; yield (first physical line number, logical line)."""
    buffer, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if line.lstrip().startswith("#"):  # pip never continues a comment line
            if buffer:
                yield start, buffer
                buffer = ""
            yield number, line
            continue
        content = line.split(" #", 1)[0]
        if content.rstrip().endswith("\\"):
            buffer += content.rstrip()[:-1] + " "
            continue
        yield start, buffer + content
        buffer = ""
    if buffer:
        yield start, buffer


def problems(lock: RequirementsLock, declared_sha256: str | None, refresh: str) -> list[str]:
    """Why `lock` cannot be trusted: stale against its declaration, or a requirement unhashed.
    (declared_sha256 None: a lock whose freshness is guarded elsewhere, e.g. the host lock by ./noxw.)"""
    found = []
    if declared_sha256 is None:
        pass
    elif lock.input_sha256 is None:
        found.append(f"{lock.path}: no input-sha256 header; refresh with `{refresh}`")
    elif lock.input_sha256 != declared_sha256:
        found.append(f"{lock.path} is stale: its declaration changed since it was locked; refresh with `{refresh}`")
    for requirement in lock.requirements:
        if not requirement.hashes:
            found.append(
                f"{lock.path}: {requirement.name}=={requirement.version} has no --hash; refresh with `{refresh}`"
            )
    if not lock.requirements:
        found.append(f"{lock.path}: holds no requirements; refresh with `{refresh}`")
    return found
