"""`nox -s docs`: the site under output/site/, built by MkDocs (--strict) from docs/ and the
reference pages generated from the models.

MkDocs and its theme live in the session's own virtualenv (lock/requirements/docs.txt, installed
with --require-hashes by noxfile.py), not in the host environment; this module only runs them. The
build reads nothing from the network: the theme's fonts are off (`font: false`) and no plugin fetches.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.errors import UsageError
from hpsforge.core.settings import settings
from hpsforge.docs import reference

# How the MkDocs hook (docs/hooks/reference_pages.py) finds the generated reference pages.
REFERENCE_VARIABLE = "HPSFORGE_DOCS_REFERENCE"
BUILD_TIMEOUT_S = 600.0


def config_file() -> Path:
    return settings().root / "mkdocs.yml"


def reference_dir() -> Path:
    """Where the reference pages are generated: build output, never a committed copy."""
    return settings().output_dir / "docs-reference"


def default_site_dir() -> Path:
    return settings().output_dir / "site"


def build(mkdocs: Path, site_dir: Path | None = None) -> Path:
    """Generate the reference pages, then `mkdocs build --strict` into `site_dir`; a warning
    (a broken link, a page missing from the navigation) fails the build."""
    if not mkdocs.exists():
        raise UsageError(
            f"{mkdocs}: MkDocs is not installed there",
            hint="build the site with `./noxw -s docs`, which installs lock/requirements/docs.txt first",
        )
    site_dir = default_site_dir() if site_dir is None else site_dir
    started = time.monotonic()
    written = reference.write(reference_dir())
    print(f"hpsforge: {len(written)} reference page(s) generated in {settings().shown(reference_dir())}", flush=True)
    proc.run(
        [mkdocs, "build", "--strict", "--clean", "--config-file", config_file(), "--site-dir", site_dir],
        what="the documentation site does not build (mkdocs build --strict)",
        timeout=BUILD_TIMEOUT_S,
        cwd=settings().root,
        env={**os.environ, REFERENCE_VARIABLE: str(reference_dir()), "NO_MKDOCS_2_WARNING": "1"},
        output="merge",
        hint="fix the page and link the lines above name (a warning fails a --strict build)",
    )
    pages = sorted(site_dir.rglob("index.html"))
    print(
        f"hpsforge: site written to {settings().shown(site_dir)}: {len(pages)} page(s) "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return site_dir
