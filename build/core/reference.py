"""Image references, `[host[:port]/]repository[:tag][@sha256:digest]`, read by one grammar.

The grammar is the OCI distribution project's (github.com/distribution/reference), with digests
limited to sha256, the one algorithm hpsforge records images and archives by:

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ registry "/" ] repository             at most 255 characters in all
    registry   := host [ ":" port ]
    host       := label ( "." label )* | "[" IPv6 address "]"
    label      := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
    port       := 1 to 5 digits, at most 65535
    repository := component ( "/" component )*
    component  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" [a-f0-9]{64}

As for Docker, the first "/"-separated part of a name is the registry only when it contains a
"." or a ":", is "localhost", has an upper-case letter or is a bracketed IPv6 address; otherwise
it is the repository's first component (`hps/ocr-cpu` names no registry). Nothing is added: no
`docker.io/library/`, no `latest`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NoReturn, Self

from hpsforge.core.errors import UsageError

USAGE = "[HOST[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST]"
NAME_MAX = 255

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = re.compile(rf"(?:(?P<name>{_LABEL}(?:\.{_LABEL})*)|\[(?P<ipv6>[0-9a-fA-F:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def _is_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first != first.lower() or first.startswith("[")


def _split(text: str) -> tuple[str | None, str, str | None, str | None]:
    """(registry, repository, tag, digest) of `text`, or a UsageError saying what is wrong."""

    def malformed(problem: str) -> NoReturn:
        raise UsageError(
            f"malformed reference {text!r}: {problem}", hint=f"write it as {USAGE}, e.g. 127.0.0.1:5000/hps/ocr-cpu:v1"
        )

    if not text:
        malformed("it is empty")
    if any(character.isspace() or not character.isprintable() for character in text):
        malformed("it contains white space or control characters")
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        malformed(f"the digest {digest!r} is not sha256: and 64 lower-case hexadecimal digits")
    tag = None
    if name.rfind(":") > name.rfind("/"):  # a ':' before the last '/' is the registry's port
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            malformed(f"the tag {tag!r} is not 1 to 128 letters, digits, '_', '.' or '-' (the first no '.' or '-')")
    if len(name) > NAME_MAX:
        malformed(f"its name is {len(name)} characters long, more than {NAME_MAX}")
    registry, repository = None, name
    first, slash, rest = name.partition("/")
    if slash and _is_registry(first):
        registry, repository = first, rest
        host = _HOST.fullmatch(first)
        if host is None:
            malformed(
                f"the registry {first!r} is not HOST[:PORT] (host names of letters, digits and '-', "
                "dot-separated, or a [bracketed] IPv6 address)"
            )
        if host["ipv6"] is not None:
            try:
                ipaddress.IPv6Address(host["ipv6"])
            except ValueError:
                malformed(f"the registry {first!r} has no valid IPv6 address in its brackets")
        if host["port"] is not None and not 0 < int(host["port"]) <= 65535:
            malformed(f"the registry {first!r} has a port outside 1-65535")
    if not repository:
        malformed("it names no repository")
    for component in repository.split("/"):
        if not component:
            malformed("its repository has an empty path component (a '/' too many)")
        if not _COMPONENT.fullmatch(component):
            malformed(
                f"the repository path component {component!r} is not lower-case letters and digits "
                "joined by '.', '_', '__' or '-'"
            )
    return registry, repository, tag, (digest if at else None)


@dataclass(frozen=True, kw_only=True)
class ImageReference:
    """One reference; every instance is valid and its `str()` reads back as itself."""

    registry: str | None = None  # host[:port] as written (Docker's credentials are keyed by it)
    repository: str
    tag: str | None = None
    digest: str | None = None  # sha256:<64 hex>

    def __post_init__(self) -> None:
        # Also catches parts that would read back differently, e.g. a repository `localhost/x`.
        if _split(str(self)) != (self.registry, self.repository, self.tag, self.digest):
            raise UsageError(
                f"malformed reference {str(self)!r}: it would read back as other parts than "
                f"registry={self.registry!r}, repository={self.repository!r}, tag={self.tag!r}, "
                f"digest={self.digest!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Self:
        registry, repository, tag, digest = _split(text)
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """registry/repository: what a tag or digest is appended to."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return f"{self.name}{tag}{digest}"
