"""Golden cases: pipelines/<Name>/goldens/cases.toml, the requests a pipeline must answer exactly.

A case names a model, a request and what its result must hold, by path ("a.0.b" walks dicts and
lists). String values in a request may reference files:
  "file:NAME"                 base64 of pipelines/<Name>/goldens/NAME
  "fixture:ARTIFACT/BASENAME" base64 of a locked fixture file (pipeline.toml [[fixtures]])
  "${VAR}"                    a value saved by an earlier case (`save`), e.g. an index key
Checks: `exact` (==), `close` ([expected, tolerance]: numbers or nested lists of numbers),
`at_least` (number >= bound), `length` (len ==), `error_code` (an error envelope expected).

`run` is the one golden-case runner: the conformance suite, the pipelines' make_goldens.py, the
lifecycle checks and the serving benchmark all send the cases through it, each with its own
`send` (HTTP, gRPC, the client library, or the models in-process). This module needs only the
standard library and pydantic, so it also runs inside the pipeline images.
"""

from __future__ import annotations

import base64
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MISSING = object()
JsonObject = dict[str, Any]  # a request or an envelope, as JSON decodes it


class GoldenCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    description: str = ""
    request: dict[str, Any]
    exact: dict[str, Any] = {}
    close: dict[str, tuple[Any, float]] = {}
    at_least: dict[str, float] = {}
    length: dict[str, int] = {}
    error_code: int | None = None
    error_contains: str | None = None
    save: dict[str, str] = {}


class ConformanceTarget(BaseModel):
    """Which endpoint the generic checks (protocol, bad input, concurrency) aim at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    valid_case: str  # a golden case that needs no saved state: the "still serving" request
    image_field: str | None = None  # the base64 image field, if the endpoint takes one
    required_field: str  # a field whose absence is a 422


class BenchWorkloads(BaseModel):
    """The golden cases the serving benchmark sends again and again (`nox -s bench -- cpu --serving`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    golden: str  # the pipeline's everyday request
    large: str  # a larger one: a page of text, a batch of sentences, a photo of many faces

    def named(self) -> dict[str, str]:
        return {"golden": self.golden, "large": self.large}


class GoldenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conformance: ConformanceTarget
    bench: BenchWorkloads | None = None
    cases: list[GoldenCase] = Field(min_length=1)

    @property
    def valid_case(self) -> GoldenCase:
        return next(case for case in self.cases if case.name == self.conformance.valid_case)


class GoldenError(ValueError):
    """A golden file that cannot be used, with the file (and case) named."""


def load_file(pipeline_dir: Path) -> GoldenFile:
    path = pipeline_dir / "goldens" / "cases.toml"
    try:
        golden = GoldenFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise GoldenError(f"{path}: cannot be read ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise GoldenError(f"{path}: not valid TOML: {error}") from None
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise GoldenError(f"{path}: {details}") from None
    names = {case.name for case in golden.cases}
    if golden.conformance.valid_case not in names:
        raise GoldenError(f"{path}: [conformance] valid_case {golden.conformance.valid_case!r} is not a case")
    for workload, case in (golden.bench.named() if golden.bench else {}).items():
        if case not in names:
            raise GoldenError(f"{path}: [bench] {workload} {case!r} is not a case")
    return golden


def load(pipeline_dir: Path) -> list[GoldenCase]:
    return load_file(pipeline_dir).cases


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path ("ocrResults.0.prunedResult"), or MISSING."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _close(actual: Any, expected: Any, tolerance: float) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_close(a, e, tolerance) for a, e in zip(actual, expected, strict=True))
        )
    return isinstance(actual, (int, float)) and abs(actual - expected) <= tolerance


def problems(case: GoldenCase, envelope: JsonObject) -> list[str]:
    """What in `envelope` does not match the case (empty: it passes)."""
    if case.error_code is not None:
        found = []
        if envelope.get("errorCode") != case.error_code:
            found.append(f"errorCode {envelope.get('errorCode')}, expected {case.error_code}")
        if case.error_contains and case.error_contains not in str(envelope.get("errorMsg")):
            found.append(f"errorMsg {envelope.get('errorMsg')!r} lacks {case.error_contains!r}")
        return found
    if envelope.get("errorCode") != 0:
        return [f"error envelope {envelope.get('errorCode')}: {envelope.get('errorMsg')}"]
    result, found = envelope.get("result"), []
    for path, expected in case.exact.items():
        if (actual := lookup(result, path)) != expected:
            found.append(f"{path}: {actual!r} != {expected!r}" if actual is not MISSING else f"{path}: missing")
    for path, (expected, tolerance) in case.close.items():
        if not _close(actual := lookup(result, path), expected, tolerance):
            found.append(f"{path}: {actual!r} not within {tolerance} of {expected!r}")
    for path, bound in case.at_least.items():
        actual = lookup(result, path)
        if not isinstance(actual, (int, float)) or actual < bound:
            found.append(f"{path}: {actual!r} < {bound}")
    for path, expected in case.length.items():
        actual = lookup(result, path)
        if not isinstance(actual, list) or len(actual) != expected:
            found.append(f"{path}: length {len(actual) if isinstance(actual, list) else actual!r} != {expected}")
    return found


def resolve(value: Any, goldens_dir: Path, fixtures_dir: Path | None, saved: dict[str, Any]) -> Any:
    """The request value with file, fixture and saved-variable references replaced."""
    if isinstance(value, dict):
        return {key: resolve(item, goldens_dir, fixtures_dir, saved) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, goldens_dir, fixtures_dir, saved) for item in value]
    if not isinstance(value, str):
        return value
    if value.startswith("file:"):
        return base64.b64encode((goldens_dir / value[5:]).read_bytes()).decode("ascii")
    if value.startswith("fixture:"):
        if fixtures_dir is None:
            raise ValueError(f"{value}: the pipeline's fixtures are not available")
        return base64.b64encode((fixtures_dir / value[8:]).read_bytes()).decode("ascii")
    if variable := re.fullmatch(r"\$\{(\w+)\}", value):
        if variable.group(1) not in saved:
            raise GoldenError(f"{value}: no earlier case saved {variable.group(1)!r} (see `save`)")
        return saved[variable.group(1)]
    return value


def remember(case: GoldenCase, envelope: JsonObject, saved: dict[str, Any]) -> None:
    for variable, path in case.save.items():
        saved[variable] = lookup(envelope.get("result"), path)


Send = Callable[[str, JsonObject], JsonObject]  # (model, request) -> envelope (or an error document)


@dataclass
class CaseOutcome:
    """One case as sent and answered: what it asked, what came back, what did not match."""

    case: GoldenCase
    request: JsonObject
    envelope: JsonObject
    problems: list[str]
    milliseconds: float


@dataclass
class Run:
    outcomes: list[CaseOutcome] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)  # the values cases saved (`save`)

    @property
    def failures(self) -> list[str]:
        return [f"{outcome.case.name}: {problem}" for outcome in self.outcomes for problem in outcome.problems]


def run(pipeline_dir: Path, send: Send, fixtures_dir: Path | None = None) -> Run:
    """Every case of the pipeline in order (later ones may use what earlier ones saved), sent with
    `send` and checked."""
    result = Run()
    for case in load(pipeline_dir):
        request = resolve(case.request, pipeline_dir / "goldens", fixtures_dir, result.saved)
        started = time.perf_counter()
        envelope = send(case.model, request)
        milliseconds = (time.perf_counter() - started) * 1000
        found = problems(case, envelope)
        result.outcomes.append(CaseOutcome(case, request, envelope, found, milliseconds))
        remember(case, envelope, result.saved)
    return result
