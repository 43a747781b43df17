"""Debian version constraints for declared packages: `>= 26.1.5, << 26.2~` (apt's relation syntax).

A constraint survives what Debian does to a release in place: a binNMU (`+b1`) or a newer Debian
revision of the same upstream version still matches, and freeze pins the newest version that
does. Versions compare by dpkg's rules (python-debian), never as strings.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from debian.debian_support import Version

_OPERATORS: dict[str, Callable[[Version, Version], bool]] = {
    "<<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">>": operator.gt,
}
_CLAUSE = re.compile(r"^\s*(<<|<=|>=|>>|=)?\s*([0-9][0-9A-Za-z.+~:-]*)\s*$")


@dataclass(frozen=True)
class Clause:
    operator: str
    version: str

    def allows(self, version: str) -> bool:
        return _OPERATORS[self.operator](Version(version), Version(self.version))


@dataclass(frozen=True)
class Constraint:
    """All clauses must hold; a bare version means exactly that version."""

    clauses: tuple[Clause, ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        clauses = []
        for part in text.split(","):
            match = _CLAUSE.match(part)
            if match is None:
                raise ValueError(f"{part.strip()!r} is not a version clause such as '>= 26.1.5' or '<< 26.2~'")
            clauses.append(Clause(match.group(1) or "=", match.group(2)))
        return cls(tuple(clauses))

    def allows(self, version: str) -> bool:
        return all(clause.allows(version) for clause in self.clauses)

    def newest(self, versions: list[str]) -> str | None:
        """The highest of `versions` this constraint allows, or None."""
        matching = [version for version in versions if self.allows(version)]
        return max(matching, key=Version) if matching else None


def sorted_versions(versions: list[str]) -> list[str]:
    return sorted(set(versions), key=Version)
