"""The `hpsforge.toml` and `pipeline.toml` reference pages, generated from the pydantic models.

Every field of every model a file can hold is one row: its name, type (with its constraints), default
and description (the field's `Field(description=...)`). A field without a description stops the
generation: the reference is never allowed to fall behind the models.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hpsforge.core.config import ProjectConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text
from hpsforge.core.pipelines import Pipeline

HPSFORGE_TOML_PAGE = "hpsforge-toml.md"
PIPELINE_TOML_PAGE = "pipeline-toml.md"


@dataclass(frozen=True)
class Row:
    """One field of a model, as the reference shows it."""

    name: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    """One model and the TOML tables it is written as (a model may sit at several places)."""

    model: type[BaseModel]
    tables: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class PageSpec:
    """A reference page: the file it documents and the model its top level is."""

    filename: str
    title: str
    documented_file: str
    root: type[BaseModel]
    intro: str


PAGES = (
    PageSpec(
        HPSFORGE_TOML_PAGE,
        "hpsforge.toml",
        "hpsforge.toml",
        ProjectConfig,
        "The project's declarations, at the root of the checkout. After an edit, `./noxw -s freeze` "
        "re-resolves the locks the edited fields feed, and `./noxw -s lock-check` names any lock left stale.",
    ),
    PageSpec(
        PIPELINE_TOML_PAGE,
        "pipeline.toml",
        "pipelines/<Name>/pipeline.toml",
        Pipeline,
        "One file per pipeline folder: what the pipeline needs in its image besides the runtime, its "
        "locked model files, its test fixtures, the settings its server reads and how it is deployed.",
    ),
)


def anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _nested_models(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The models an annotation holds, each with how it nests: "table", "array" or "map"."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, "table"
    elif origin is typing.Annotated:
        yield from _nested_models(arguments[0])
    elif origin in (typing.Union, types.UnionType):
        for argument in arguments:
            yield from _nested_models(argument)
    elif origin is list:
        yield from ((model, "array") for model, _ in _nested_models(arguments[0]))
    elif origin is dict:
        yield from ((model, "map") for model, _ in _nested_models(arguments[1]))


def _table(parent: str, name: str, nesting: str) -> str:
    dotted = f"{parent}.{name}" if parent else name
    return {"table": f"[{dotted}]", "array": f"[[{dotted}]]", "map": f"[{dotted}.<name>]"}[nesting]


def _dotted(table: str) -> str:
    return table.strip("[]")


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", Any: "any value"}


def _constraints(metadata: list[Any]) -> list[str]:
    words = []
    for item in metadata:
        if (pattern := getattr(item, "pattern", None)) is not None:
            words.append(f"matching `{pattern}`")
        for attribute, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if (bound := getattr(item, attribute, None)) is not None:
                words.append(f"{word} {bound}")
        if (least := getattr(item, "min_length", None)) is not None:
            words.append(f"at least {least}")
        function = getattr(item, "func", None)
        if function is not None and function.__doc__:
            words.append(function.__doc__.strip().splitlines()[0].rstrip("."))
    return words


def type_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    """How the reference names a type: plain words, constraints said, models linked."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        text = type_text(arguments[0], list(arguments[1:]))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = f"[{annotation.__name__}](#{anchor(annotation)})"
    elif origin in (typing.Union, types.UnionType):
        present = [argument for argument in arguments if argument is not type(None)]
        text = " or ".join(type_text(argument) for argument in present)
        if len(present) < len(arguments):
            text += " (optional)"
    elif origin is list:
        text = f"list of {type_text(arguments[0])}"
    elif origin is dict:
        text = f"table of {type_text(arguments[0])} to {type_text(arguments[1])}"
    elif origin is typing.Literal:
        text = " or ".join(f"`{json.dumps(argument)}`" for argument in arguments)
    elif annotation in _SCALARS:
        text = _SCALARS[annotation]
    else:
        text = getattr(annotation, "__name__", str(annotation))
    words = _constraints(metadata or [])
    return f"{text} ({', '.join(words)})" if words else text


def _toml_value(value: Any) -> str:
    if isinstance(value, PurePath):
        return json.dumps(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "its fields' defaults"
    if value in ([], {}):
        return "empty"
    return f"`{_toml_value(value)}`"


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def rows(model: type[BaseModel]) -> tuple[Row, ...]:
    found = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            raise HpsforgeError(
                f"{model.__module__}.{model.__name__}.{name} has no description",
                hint="give the field Field(description=...): the reference pages are generated from it",
            )
        found.append(
            Row(
                name=info.alias or name,
                type=type_text(info.annotation, info.metadata),
                default=default_text(info),
                description=_escape(info.description or ""),
            )
        )
    return tuple(found)


def sections(root: type[BaseModel]) -> list[Section]:
    """Every model reachable from `root`, first seen first, with each table it is written as."""
    tables: dict[type[BaseModel], list[str]] = {root: ["(top level)"]}
    queue: list[tuple[type[BaseModel], str]] = [(root, "")]
    while queue:
        model, parent = queue.pop(0)
        for name, info in model.model_fields.items():
            for nested, nesting in _nested_models(info.annotation):
                table = _table(parent, info.alias or name, nesting)
                if nested not in tables:
                    tables[nested] = []
                if table not in tables[nested]:
                    tables[nested].append(table)
                    queue.append((nested, _dotted(table)))
    return [Section(model, tuple(where), rows(model)) for model, where in tables.items()]


def _docstring(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def render(spec: PageSpec) -> str:
    """The Markdown of one reference page."""
    lines = [
        f"# {spec.title}",
        "",
        f"`{spec.documented_file}`. {spec.intro}",
        "",
        "This page is generated from the pydantic models in `build/` each time the site is built "
        f"(`{spec.root.__module__}`); every field has a row. A field not listed here is refused as "
        "an unknown field, and an error names the file, the field and the reason.",
        "",
    ]
    for section in sections(spec.root):
        where = ", ".join(f"`{table}`" if table.startswith("[") else table for table in section.tables)
        lines += [
            f"## {section.model.__name__} {{#{anchor(section.model)}}}",
            "",
            f"Written as: {where}.",
            "",
            _docstring(section.model),
            "",
            "| field | type | default | description |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{row.name}` | {row.type} | {row.default} | {row.description} |" for row in section.rows]
        lines.append("")
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """File name -> Markdown of every reference page."""
    return {spec.filename: render(spec) for spec in PAGES}


def write(folder: Path) -> list[Path]:
    """Write the reference pages into `folder` (the build's, never docs/: no copy is kept by hand)."""
    written = []
    for filename, text in pages().items():
        atomic_write_text(folder / filename, text)
        written.append(folder / filename)
    return written
