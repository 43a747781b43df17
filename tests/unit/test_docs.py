"""The documentation: the reference pages follow the models, the README stays short and points into
docs/, every session has its page, and the site's own lock is checked like every other."""

from __future__ import annotations

import ast
import re
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, Field

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import DeployParameters, Pipeline
from hpsforge.docs import reference

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in typing.get_args(annotation) for model in _models_in(argument)]


def _reachable(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model a file rooted at `root` can hold (walked here, independently of the generator)."""
    seen, queue = [root], [root]
    while queue:
        for info in queue.pop().model_fields.values():
            for model in _models_in(info.annotation):
                if model not in seen:
                    seen.append(model)
                    queue.append(model)
    return seen


def _row(page: str, name: str, after_anchor: str) -> list[str]:
    """The cells of field `name`'s row in the section of the model whose anchor is given."""
    section = page.split(f"{{#{after_anchor}}}", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
    return _cells(line)


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells, as Python-Markdown splits them: a `|` inside a code span or
    escaped is text."""
    cells, current, in_code, previous = [], "", False, ""
    for character in line:
        if character == "`":
            in_code = not in_code
        if character == "|" and not in_code and previous != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += character
        previous = character
    return cells[1:]


_WORDS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}


@pytest.mark.parametrize("spec", reference.PAGES, ids=lambda spec: spec.filename)
def test_the_reference_lists_every_field_of_every_model(spec):
    page = reference.render(spec)
    models = _reachable(spec.root)
    assert len(models) >= 5
    for model in models:
        assert f"## {model.__name__} {{#{model.__name__.lower()}}}" in page
        for name, info in model.model_fields.items():
            cells = _row(page, name, model.__name__.lower())
            assert len(cells) == 4, (model.__name__, name, cells)
            _, type_cell, default_cell, description_cell = cells
            assert info.description and " ".join(info.description.split()) in description_cell.replace("\\|", "|")
            annotation = info.annotation
            if annotation in _WORDS:
                assert type_cell.startswith(_WORDS[annotation]), (name, type_cell)
            for nested in _models_in(annotation):
                assert f"(#{nested.__name__.lower()})" in type_cell
            if typing.get_origin(annotation) is typing.Literal:
                assert all(f'"{value}"' in type_cell for value in typing.get_args(annotation))
            if typing.get_origin(annotation) in (typing.Union, types.UnionType):
                assert "(optional)" in type_cell or type(None) not in typing.get_args(annotation)
            for item in info.metadata:
                if getattr(item, "pattern", None):
                    assert item.pattern in type_cell
                if getattr(item, "ge", None) is not None:
                    assert f">= {item.ge}" in type_cell
            if info.is_required():
                assert default_cell == "required"
            elif isinstance(info.default, str | int) and not isinstance(info.default, bool):
                assert default_cell == f"`{info.default!r}`".replace("'", '"'), (name, default_cell)
            else:
                assert default_cell in ("unset", "empty", "its fields' defaults") or default_cell.startswith("`")


def test_the_reference_names_the_tables_fields_are_written_in():
    page = reference.render(reference.PAGES[0])
    for table in ("`[engine]`", "`[[engine.packages]]`", "`[targets.<name>]`", "`[[targets.<name>.cuda.libraries]]`"):
        assert table in page
    pipeline_page = reference.render(reference.PAGES[1])
    assert "`[[models]]`" in pipeline_page and "`[deploy.state]`" in pipeline_page
    assert "`[[fixtures]]`" in pipeline_page  # the same model at a second place


class _ScratchDeploy(DeployParameters):
    """Sizing with one more field, as a change to the model would add it."""

    gpu_memory_mib: int = Field(512, ge=1, description="Scratch: memory of each GPU, in MiB.")


class _ScratchPipeline(Pipeline):
    deploy: _ScratchDeploy = Field(_ScratchDeploy(), description="Kubernetes sizing, scratch edition.")


def test_a_new_field_changes_the_generated_page(monkeypatch):
    before = reference.pages()[reference.PIPELINE_TOML_PAGE]
    assert "gpu_memory_mib" not in before
    scratch = reference.PageSpec(
        reference.PIPELINE_TOML_PAGE, "pipeline.toml", "pipelines/<Name>/pipeline.toml", _ScratchPipeline, "x"
    )
    monkeypatch.setattr(reference, "PAGES", (reference.PAGES[0], scratch))
    after = reference.pages()[reference.PIPELINE_TOML_PAGE]
    assert after != before
    assert _row(after, "gpu_memory_mib", "_scratchdeploy") == [
        "`gpu_memory_mib`",
        "integer (>= 1)",
        "`512`",
        "Scratch: memory of each GPU, in MiB.",
    ]
    assert _row(after, "deploy", "_scratchpipeline")[1] == "[_ScratchDeploy](#_scratchdeploy)"


def test_a_changed_description_or_default_changes_the_generated_page(monkeypatch):
    before = reference.pages()[reference.HPSFORGE_TOML_PAGE]
    engine_field = ProjectConfig.model_fields["engine"].annotation.model_fields["build_cache_keep"]
    monkeypatch.setattr(engine_field, "description", "A new description of the cache bound.")
    monkeypatch.setattr(engine_field, "default", "20GB")
    after = reference.pages()[reference.HPSFORGE_TOML_PAGE]
    assert after != before
    assert _row(after, "build_cache_keep", "engineconfig")[2:] == ['`"20GB"`', "A new description of the cache bound."]


def test_a_field_without_a_description_stops_the_generation():
    class Undescribed(DeployParameters):
        spare: int = 3

    spec = reference.PageSpec("x.md", "x", "x.toml", Undescribed, "x")
    with pytest.raises(HpsforgeError, match=r"Undescribed\.spare has no description") as caught:
        reference.render(spec)
    assert "Field(description=" in caught.value.hint


def test_the_reference_is_written_into_the_build_folder_only(tmp_path):
    written = reference.write(tmp_path / "reference")
    assert sorted(path.name for path in written) == sorted(spec.filename for spec in reference.PAGES)
    assert all(path.read_text(encoding="utf-8") == reference.pages()[path.name] for path in written)
    assert not list((DOCS / "reference").glob("*.md")) if (DOCS / "reference").exists() else True
    nav = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text())["nav"]
    listed = [page for entry in nav if "Reference" in entry for item in entry["Reference"] for page in item.values()]
    assert listed == [f"reference/{spec.filename}" for spec in reference.PAGES]


def _markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_the_readme_is_short_and_links_into_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    links = [link for link in _markdown_links(text) if not link.startswith("http")]
    for link in links:
        assert (PROJECT_ROOT / link.split("#")[0]).is_file(), f"README.md links to {link}, which is not there"
    into_docs = {link.split("#")[0] for link in links if link.startswith("docs/")}
    for page in ("docs/getting-started.md", "docs/concepts.md", "docs/commands/index.md", "docs/troubleshooting.md"):
        assert page in into_docs
    assert len(into_docs) >= 12
    # The two set-up commands, exactly as CI runs the second (.ci/run).
    assert "\n./noxw -s images -- cpu " in text and "\n./noxw -s tests " in text
    assert (PROJECT_ROOT / ".ci" / "run").read_text().rstrip().endswith("exec ./noxw -s tests")


def _sessions() -> list[str]:
    """Every session noxfile.py declares, by the name nox gives it."""
    names = []
    for node in ast.parse((PROJECT_ROOT / "noxfile.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if ast.unparse(target) == "nox.session":
                named = [k.value for k in getattr(decorator, "keywords", []) if k.arg == "name"]
                names.append(ast.literal_eval(named[0]) if named else node.name)
    return names


def _nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_session_has_its_page_and_every_page_is_in_the_navigation():
    sessions = _sessions()
    assert {"images", "tests", "lock-check", "docs"} <= set(sessions) and len(sessions) >= 19
    nav = _nav_pages(yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text())["nav"])
    index = (DOCS / "commands" / "index.md").read_text(encoding="utf-8")
    for session in sessions:
        page = DOCS / "commands" / f"{session}.md"
        assert page.is_file(), f"no page for the {session} session"
        assert page.read_text(encoding="utf-8").startswith(f"# {session}\n")
        assert f"commands/{session}.md" in nav and f"]({session}.md)" in index
    written = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(page for page in nav if not page.startswith("reference/")) == written


def test_the_site_builds_offline_by_configuration():
    config = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["name"] == "material" and config["theme"]["font"] is False
    assert config["strict"] is True
    assert config.get("plugins", []) == ["search"]  # the theme's own search index, built locally
