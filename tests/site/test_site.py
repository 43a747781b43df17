"""The documentation site, built as `./noxw -s docs` builds it: --strict, then again with no network
at all (`unshare -n`: a network namespace of its own with nothing in it); a broken link fails it.

The first build installs lock/requirements/docs.txt from PyPI into the session's virtualenv
(.nox/docs); the builds themselves read nothing from the network."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import DeployParameters
from hpsforge.docs import site

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MKDOCS = PROJECT_ROOT / ".nox" / "docs" / "bin" / "mkdocs"


def _docs_session(site_dir: Path, *wrapper: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrapper, str(PROJECT_ROOT / "noxw"), "-s", "docs", "--", "--site-dir", str(site_dir)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=900,
    )


def _pages(site_dir: Path) -> list[str]:
    return sorted(str(page.relative_to(site_dir)) for page in site_dir.rglob("index.html"))


def _nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site") / "site"
    result = _docs_session(site_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Session docs was successful" in result.stderr
    return site_dir


def test_the_site_builds_strict_with_every_page_and_the_generated_reference(built):
    nav = _nav_pages(yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text())["nav"])
    wanted = sorted(
        "index.html"
        if page == "index.md"
        else page.removesuffix("index.md").removesuffix(".md").rstrip("/") + "/index.html"
        for page in nav
    )
    assert _pages(built) == wanted
    reference = (built / "reference" / "hpsforge-toml" / "index.html").read_text(encoding="utf-8")
    for name in ProjectConfig.model_fields["engine"].annotation.model_fields:
        assert f"<code>{name}</code>" in reference
    pipeline = (built / "reference" / "pipeline-toml" / "index.html").read_text(encoding="utf-8")
    for name in DeployParameters.model_fields:
        assert f"<code>{name}</code>" in pipeline
    assert not list((PROJECT_ROOT / "docs").rglob("*toml.md"))  # generated only, never committed


def test_the_site_builds_with_no_network_and_fetches_nothing_at_view_time(built, tmp_path):
    offline = tmp_path / "offline"
    result = _docs_session(offline, "unshare", "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _pages(offline) == _pages(built)
    for page in built.rglob("*"):
        if page.suffix in (".html", ".css", ".js"):
            text = page.read_text(encoding="utf-8", errors="replace")
            assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page


def test_a_broken_link_fails_the_strict_build(built, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "docs", project / "docs")
    shutil.copyfile(PROJECT_ROOT / "mkdocs.yml", project / "mkdocs.yml")
    page = project / "docs" / "concepts.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n")
    monkeypatch.setenv("HPSFORGE_PROJECT", str(project))
    assert os.access(MKDOCS, os.X_OK)
    with pytest.raises(HpsforgeError) as caught:
        site.build(MKDOCS, tmp_path / "broken-site")
    assert "mkdocs build --strict" in str(caught.value)
    assert "no-such-page.md" in str(caught.value) and "concepts.md" in str(caught.value)
