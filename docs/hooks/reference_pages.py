"""MkDocs hook: adds the reference pages `nox -s docs` generated from hpsforge's models
(hpsforge.docs.reference) to the site. They are never committed, so a build without them fails."""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

VARIABLE = "HPSFORGE_DOCS_REFERENCE"


def on_files(files: Files, config: object) -> Files:
    folder = os.environ.get(VARIABLE)
    if not folder:
        raise PluginError(f"{VARIABLE} is not set: build the site with `./noxw -s docs`, which generates the reference")
    generated = sorted(Path(folder).glob("*.md"))
    if not generated:
        raise PluginError(f"{folder}: no reference pages; build the site with `./noxw -s docs`")
    for page in generated:
        files.append(File.generated(config, f"reference/{page.name}", content=page.read_text(encoding="utf-8")))
    return files
