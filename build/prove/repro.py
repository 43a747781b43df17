"""`nox -s repro`: rebuild every image of the graph from nothing and prove each digest is the one
built before, and the one recorded.

For each node: the first build (as `images` builds it; seconds when warm), a rebuild with a fresh
rootfs and no BuildKit cache (optionally from an input archive into an empty store), and the digest
lock/images.lock.json records for the same inputs. Each image gets a verdict:

| verdict            | meaning                                                      | exit |
|--------------------|--------------------------------------------------------------|------|
| reproducible       | rebuilt == first == recorded                                  | 0    |
| new-inputs         | rebuilt == first, but nothing is recorded for these inputs   | 7    |
| inputs-unavailable | a locked input could not be had, so it was not built          | 4    |
| not-reproducible   | rebuilt != first, or first != recorded for the same inputs    | 6    |

The converter image is a tool, not bit for bit (it is exported without the timestamp rewrite):
its verdict is its outputs'. The rebuild converts every model again from nothing (not from the
store), and a converted file whose bytes differ from lock/conversions.json makes its pipeline
image not-reproducible, naming the model, engine, file and both hashes.

The run's exit code is its worst verdict's. output/repro/report.json and junit.xml (one testcase
per image) are written in every case; a mismatch adds output/repro/<role>.txt (layers, then
files, then diffoscope's text for the differing files where diffoscope is installed).
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal
from xml.sax.saxutils import escape, quoteattr

from pydantic import BaseModel, ConfigDict, ValidationError
from python_on_whales import docker

from hpsforge.core import proc
from hpsforge.core.config import Model
from hpsforge.core.errors import (
    ConvertedMismatchError,
    DigestMismatchError,
    ExitCode,
    HpsforgeError,
    InputUnavailableError,
    NewInputsError,
    UsageError,
)
from hpsforge.core.files import atomic_write_text, canonical_json
from hpsforge.core.settings import cache_override, settings
from hpsforge.images import buildkit
from hpsforge.images.graph import BuildGraph, BuildOptions
from hpsforge.inputs import archive
from hpsforge.inputs.store import ContentStore, scratch_dir
from hpsforge.locks import images_lock
from hpsforge.prove import imagediff

FORMAT: Final = "hpsforge-repro/1"
TOOL_IMAGE: Final = "a tool image, not bit for bit: what it makes is proven against its lock"


class Verdict(StrEnum):
    """An image's verdict, best first and worst last (the run ends with its worst verdict's exit
    code); each but `reproducible` raises its error kind, whose exit code it carries. The values
    are report.json's strings."""

    REPRODUCIBLE = "reproducible", None
    NEW_INPUTS = "new-inputs", NewInputsError
    INPUTS_UNAVAILABLE = "inputs-unavailable", InputUnavailableError
    NOT_REPRODUCIBLE = "not-reproducible", DigestMismatchError

    error: type[HpsforgeError] | None

    def __new__(cls, value: str, error: type[HpsforgeError] | None) -> Verdict:
        member = str.__new__(cls, value)
        member._value_ = value
        member.error = error
        return member

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SUCCESS if self.error is None else self.error.exit_code

    @property
    def rank(self) -> int:
        """0 for the best verdict, growing towards the worst."""
        return list(Verdict).index(self)

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict]) -> Verdict:
        return max(verdicts, key=lambda verdict: verdict.rank, default=cls.REPRODUCIBLE)


class ImageResult(Model):
    role: str
    kind: str
    target: str | None
    pipeline: str | None
    inputs_sha256: str | None
    recorded: str | None  # the digest lock/images.lock.json holds for these inputs
    first: str | None
    rebuilt: str | None
    verdict: Verdict
    seconds: float  # the rebuild from nothing
    reason: str = ""
    difference_report: str | None = None


class Machine(Model):
    engine: str
    buildx: str
    kernel: str
    architecture: str


class ReproReport(Model):
    format: Literal["hpsforge-repro/1"]
    revision: str  # the project's commit (+dirty): only reports of one revision compare
    created: str
    targets: list[str]
    from_archive: bool
    machine: Machine
    images: list[ImageResult]

    def worst(self) -> Verdict:
        return Verdict.worst(image.verdict for image in self.images)


def default_report_dir() -> Path:
    """output/repro: where report.json, junit.xml and the difference reports go by default."""
    return settings().output_dir / "repro"


QUESTION_TIMEOUT_S = 60  # git and docker answering one question about this checkout or engine


def project_revision() -> str:
    def git(*args: str) -> str:  # outside a git checkout (a release tarball) git exits 128: no revision
        result = proc.run(
            ["git", *args],
            cwd=settings().root,
            what=f"`git {' '.join(args)}` failed",
            timeout=QUESTION_TIMEOUT_S,
            check=False,
        )
        return result.stdout.strip() if result.ok else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_facts() -> Machine:
    buildx = proc.run(
        ["docker", "buildx", "version"], what="`docker buildx version` failed", timeout=QUESTION_TIMEOUT_S, check=False
    ).stdout.split()
    server = docker.version().server
    return Machine(
        engine=(server.version if server else None) or "unknown",
        buildx=buildx[1] if len(buildx) > 1 else "",
        kernel=platform.release(),
        architecture=platform.machine(),
    )


@contextmanager
def _store_from_archive(folder: Path) -> Iterator[None]:
    """An empty content store seeded from `folder` for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="repro-store-", dir=scratch_dir()) as store, cache_override(Path(store)):
        archive.import_(folder, ContentStore())
        yield


def _walk(
    graph: BuildGraph, options: BuildOptions, mismatched: dict[str, str] | None = None
) -> tuple[dict[str, images_lock.ImageRecord], dict[str, str], dict[str, float]]:
    """Build every node; an input that cannot be had marks that node and its descendants. With
    `mismatched`, converted files that differ from their lock mark the node there (not-reproducible)."""
    built: dict[str, images_lock.ImageRecord] = {}
    unavailable: dict[str, str] = {}
    seconds: dict[str, float] = {}
    graph.check()
    for node in graph:
        if gone := [parent for parent in node.parents if parent in unavailable]:
            unavailable[node.role] = f"its parent {gone[0]} could not be built"
            continue
        started = time.monotonic()
        try:
            built[node.role] = node.build({parent: built[parent] for parent in node.parents}, options)
        except InputUnavailableError as error:
            unavailable[node.role] = error.message
        except ConvertedMismatchError as error:
            if mismatched is None:
                raise
            mismatched[node.role] = error.message
        seconds[node.role] = time.monotonic() - started
    return built, unavailable, seconds


def explain(first: images_lock.ImageRecord, second: images_lock.ImageRecord, report: Path) -> list[str]:
    """Write the difference report of two built images; return its lines."""
    first_layout, second_layout = buildkit.ensure_layout(first), buildkit.ensure_layout(second)
    lines = [f"first:   {first.reference} {first.digest}", f"rebuilt: {second.reference} {second.digest}", ""]
    lines += imagediff.diff_layouts(first_layout, second_layout)
    lines += imagediff.diffoscope_text(first_layout, second_layout)
    atomic_write_text(report, "\n".join(lines) + "\n")
    return lines


def _verdict(
    first: images_lock.ImageRecord | None,
    rebuilt: images_lock.ImageRecord | None,
    recorded: images_lock.ImageRecord | None,
    reason: str,
) -> tuple[Verdict, str, str | None]:
    """(verdict, reason, the recorded digest for these inputs)."""
    same_inputs = (
        recorded if recorded is not None and first is not None and recorded.input_sha256 == first.input_sha256 else None
    )
    if first is None or rebuilt is None:
        return Verdict.INPUTS_UNAVAILABLE, reason, None
    if rebuilt.digest != first.digest:
        return (
            Verdict.NOT_REPRODUCIBLE,
            "the rebuild from nothing gave another digest",
            same_inputs.digest if same_inputs else None,
        )
    if same_inputs is None:
        return Verdict.NEW_INPUTS, "lock/images.lock.json records no digest for these inputs", None
    if same_inputs.digest != first.digest:
        return (
            Verdict.NOT_REPRODUCIBLE,
            "lock/images.lock.json records another digest for the same inputs",
            same_inputs.digest,
        )
    return Verdict.REPRODUCIBLE, "", same_inputs.digest


def run(
    graph: BuildGraph, targets: list[str], *, from_archive: Path | None = None, report_dir: Path | None = None
) -> ReproReport:
    recorded = images_lock.ImagesLock.read().images
    print(f"hpsforge: repro: the first build of {len(graph.nodes)} images", flush=True)
    first, unavailable, _ = _walk(graph, BuildOptions())
    origin = f"an empty store seeded from {from_archive}" if from_archive else "the content store"
    print(
        f"hpsforge: repro: rebuilding every image from nothing (fresh rootfs, no BuildKit cache, {origin})", flush=True
    )
    rebuild = BuildOptions(no_cache=True, tag_suffix="-repro")  # no_cache: every model converted again
    mismatched: dict[str, str] = {}
    if from_archive is not None:
        with _store_from_archive(from_archive):
            rebuilt, unavailable_again, seconds = _walk(graph, rebuild, mismatched)
    else:
        rebuilt, unavailable_again, seconds = _walk(graph, rebuild, mismatched)
    report_dir = report_dir or default_report_dir()
    report_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for node in graph:
        reason = unavailable.get(node.role) or unavailable_again.get(node.role, "")
        verdict, reason, recorded_digest = _verdict(
            first.get(node.role), rebuilt.get(node.role), recorded.get(node.role), reason
        )
        if node.role in mismatched:
            verdict, reason = Verdict.NOT_REPRODUCIBLE, mismatched[node.role]
        elif not node.bit_for_bit and verdict is not Verdict.INPUTS_UNAVAILABLE:
            verdict, reason = Verdict.REPRODUCIBLE, TOOL_IMAGE
        difference = None
        if (
            verdict is Verdict.NOT_REPRODUCIBLE
            and node.role in rebuilt
            and rebuilt[node.role].digest != first[node.role].digest
        ):
            difference = report_dir / f"{node.role}.txt"
            explain(first[node.role], rebuilt[node.role], difference)
        images.append(
            ImageResult(
                role=node.role,
                kind=node.kind,
                target=node.target,
                pipeline=node.pipeline,
                inputs_sha256=first[node.role].input_sha256 if node.role in first else None,
                recorded=recorded_digest,
                first=first[node.role].digest if node.role in first else None,
                rebuilt=rebuilt[node.role].digest if node.role in rebuilt else None,
                verdict=verdict,
                seconds=round(seconds.get(node.role, 0.0), 1),
                reason=reason,
                difference_report=str(difference) if difference else None,
            )
        )
    report = ReproReport(
        format=FORMAT,
        revision=project_revision(),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        targets=targets,
        from_archive=from_archive is not None,
        machine=machine_facts(),
        images=images,
    )
    atomic_write_text(report_dir / "report.json", canonical_json(report.model_dump(mode="json")))
    atomic_write_text(report_dir / "junit.xml", junit(report))
    return report


# How JUnit shows each verdict but `reproducible` (a plain testcase).
JUNIT_ELEMENTS = {
    Verdict.NOT_REPRODUCIBLE: "failure",
    Verdict.INPUTS_UNAVAILABLE: "error",
    Verdict.NEW_INPUTS: "skipped",
}


def junit(report: ReproReport) -> str:
    """One testcase per image: CI dashboards show which image is not reproducible."""
    failures, errors, skipped = (
        sum(image.verdict is verdict for image in report.images)
        for verdict in (Verdict.NOT_REPRODUCIBLE, Verdict.INPUTS_UNAVAILABLE, Verdict.NEW_INPUTS)
    )
    total = sum(image.seconds for image in report.images)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuite name="hpsforge.repro" tests="{len(report.images)}" failures="{failures}" '
        f'errors="{errors}" skipped="{skipped}" time="{total:.1f}">',
    ]
    for image in report.images:
        attributes = (
            f'classname={quoteattr(f"repro.{image.kind}")} name={quoteattr(image.role)} time="{image.seconds:.1f}"'
        )
        detail = f"first {image.first}, rebuilt {image.rebuilt}, recorded {image.recorded}; {image.reason}" + (
            f"; see {image.difference_report}" if image.difference_report else ""
        )
        if image.verdict is Verdict.REPRODUCIBLE:
            lines.append(f"  <testcase {attributes}/>")
            continue
        tag = JUNIT_ELEMENTS[image.verdict]
        lines += [
            f"  <testcase {attributes}>",
            f"    <{tag} message={quoteattr(image.verdict + ': ' + image.reason)}>{escape(detail)}</{tag}>",
            "  </testcase>",
        ]
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"


def summary(report: ReproReport) -> str:
    rows = [
        f"  {image.role:34} {image.verdict:18} {image.first or '-':71} {image.seconds:6.1f} s"
        + (f"  {image.reason}" if image.reason and image.verdict is not Verdict.REPRODUCIBLE else "")
        for image in report.images
    ]
    return "\n".join(rows)


def fail_on(report: ReproReport, report_dir: Path | None = None) -> None:
    """Raise with the run's exit code unless every image is reproducible."""
    worst = report.worst()
    if worst.error is None:
        return
    hint = (
        "record the new digests with `nox -s images` and commit lock/images.lock.json"
        if worst is Verdict.NEW_INPUTS
        else None
    )
    raise worst.error(f"repro: {worst} (report: {(report_dir or default_report_dir()) / 'report.json'})", hint=hint)


# --- comparing two machines' reports --------------------------------------------------------------


def read_report(path: Path) -> ReproReport:
    try:
        return ReproReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise UsageError(
            f"{path}: not an hpsforge repro report ({where}: {first['msg']})",
            hint="give two output/repro/report.json files written by `nox -s repro`",
        ) from None


class CompareOutcome(StrEnum):
    """What comparing one image of two machines' reports found."""

    SAME = "same"  # the same inputs gave the same digest
    DIFFERS = "differs"  # the same inputs gave another digest: not reproducible across machines
    INPUTS_DIFFER = "inputs-differ"  # not compared: the machines built it from other inputs
    NOT_BUILT = "not-built"  # not compared: absent from the second report, or not built on a machine


class _Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ComparedImage(_Comparison):
    role: str
    outcome: CompareOutcome
    first: ImageResult
    second: ImageResult | None  # None: the second report has no such image


class ReportComparison(_Comparison):
    first_report: Path
    second_report: Path
    first_machine: Machine
    second_machine: Machine
    images: list[ComparedImage]

    def differing(self) -> list[ComparedImage]:
        return [image for image in self.images if image.outcome is CompareOutcome.DIFFERS]

    def lines(self) -> list[str]:
        """A line for each image whose digest differs, and for each not compared as its inputs differ."""
        a, b = self.first_machine, self.second_machine
        lines = []
        for image in self.images:
            mine, other = image.first, image.second
            if other is None:
                continue
            if image.outcome is CompareOutcome.INPUTS_DIFFER:
                lines.append(
                    f"{image.role}: inputs differ ({(mine.inputs_sha256 or '-')[:12]} vs "
                    f"{(other.inputs_sha256 or '-')[:12]}): not compared"
                )
            elif image.outcome is CompareOutcome.DIFFERS:
                lines.append(
                    f"{image.role}: DIFFERS with the same inputs: {mine.first} ({a.engine}, {a.kernel}) "
                    f"vs {other.first} ({b.engine}, {b.kernel})"
                )
        return lines


def _compare_image(mine: ImageResult, other: ImageResult | None) -> CompareOutcome:
    if other is None or mine.first is None or other.first is None:
        return CompareOutcome.NOT_BUILT
    if mine.inputs_sha256 != other.inputs_sha256:
        return CompareOutcome.INPUTS_DIFFER
    return CompareOutcome.SAME if mine.first == other.first else CompareOutcome.DIFFERS


def compare(first_path: Path, second_path: Path) -> ReportComparison:
    """Every image of the first report beside the same image of the second; an error when the
    reports cannot be compared."""
    a, b = read_report(first_path), read_report(second_path)
    if a.revision != b.revision:
        raise UsageError(
            f"the reports are of different project revisions: revision {a.revision} ({first_path}) "
            f"vs {b.revision} ({second_path})",
            hint="compare reports of the same commit",
        )
    theirs = {image.role: image for image in b.images}
    return ReportComparison(
        first_report=first_path,
        second_report=second_path,
        first_machine=a.machine,
        second_machine=b.machine,
        images=[
            ComparedImage(
                role=mine.role,
                outcome=_compare_image(mine, theirs.get(mine.role)),
                first=mine,
                second=theirs.get(mine.role),
            )
            for mine in a.images
        ],
    )
