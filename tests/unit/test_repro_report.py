"""Repro reports: verdicts, JUnit, and comparing two machines' reports."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
from hpsforge.core.errors import UsageError
from hpsforge.prove import repro

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _image(role: str, first: str = DIGEST, rebuilt: str = DIGEST, verdict: str = "reproducible",
           inputs: str = "1" * 64) -> repro.ImageResult:
    return repro.ImageResult(role=role, kind="pipeline", target="cpu", pipeline=role, inputs_sha256=inputs,
                             recorded=first, first=first, rebuilt=rebuilt, verdict=verdict, seconds=1.0)


def _report(*images: repro.ImageResult, revision: str = "abc123", kernel: str = "6.1") -> repro.ReproReport:
    return repro.ReproReport(format=repro.FORMAT, revision=revision, created="2026-12-01T00:00:00Z", targets=["cpu"],
                             from_archive=False, machine=repro.Machine(engine="26.1.5", buildx="0.13.1", kernel=kernel,
                                                                       architecture="x86_64"),
                             images=list(images))


def _write(tmp_path, name: str, report: repro.ReproReport):
    path = tmp_path / name
    path.write_text(report.model_dump_json())
    return path


def test_the_worst_verdict_decides_the_run():
    assert _report(_image("a"), _image("b")).worst() == "reproducible"
    assert _report(_image("a", verdict="new-inputs"), _image("b")).worst() == "new-inputs"
    assert _report(_image("a", verdict="new-inputs"), _image("b", verdict="inputs-unavailable")).worst() \
        == "inputs-unavailable"
    assert _report(_image("a", verdict="not-reproducible"), _image("b", verdict="inputs-unavailable")).worst() \
        == "not-reproducible"
    assert [repro.EXIT_CODES[v] for v in ("reproducible", "new-inputs", "inputs-unavailable", "not-reproducible")] \
        == [0, 7, 4, 6]


@pytest.mark.parametrize("verdict, exit_code", [("not-reproducible", 6), ("inputs-unavailable", 4), ("new-inputs", 7)])
def test_fail_on_raises_with_the_verdicts_exit_code(verdict, exit_code, tmp_path):
    with pytest.raises(Exception) as failed:
        repro.fail_on(_report(_image("a"), _image("b", verdict=verdict)), tmp_path)
    assert failed.value.exit_code == exit_code and verdict in str(failed.value)
    repro.fail_on(_report(_image("a")), tmp_path)  # all reproducible: no error


def test_junit_has_one_testcase_per_image_and_marks_each_verdict():
    report = _report(_image("ok"), _image("drift", rebuilt=OTHER, verdict="not-reproducible"),
                     _image("gone", verdict="inputs-unavailable"), _image("fresh", verdict="new-inputs"))
    suite = ElementTree.fromstring(repro.junit(report))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "1", "1")
    kinds = {case.get("name"): [child.tag for child in case] for case in suite}
    assert kinds == {"ok": [], "drift": ["failure"], "gone": ["error"], "fresh": ["skipped"]}


def test_compare_names_the_image_that_differs_with_the_same_inputs(tmp_path):
    a = _write(tmp_path, "a.json", _report(_image("base"), _image("ocr"), _image("lac", inputs="2" * 64)))
    b = _write(tmp_path, "b.json", _report(_image("base"), _image("ocr", first=OTHER), _image("lac", first=OTHER),
                                           kernel="6.8"))
    lines = repro.compare(a, b)
    differing = [line for line in lines if "DIFFERS" in line]
    assert len(differing) == 1 and differing[0].startswith("ocr: DIFFERS with the same inputs")
    assert DIGEST in differing[0] and OTHER in differing[0] and "6.8" in differing[0]
    assert "lac: inputs differ (222222222222 vs 111111111111): not compared" in lines  # not a difference
    assert repro.compare(a, a) == []


def test_compare_refuses_reports_of_two_revisions_naming_the_field(tmp_path):
    a = _write(tmp_path, "a.json", _report(_image("base")))
    b = _write(tmp_path, "b.json", _report(_image("base"), revision="def456"))
    with pytest.raises(UsageError, match="different project revisions: revision abc123 .* vs def456"):
        repro.compare(a, b)


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path):
    a = _write(tmp_path, "a.json", _report(_image("base")))
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"format": "someone-else/1", "images": []}))
    with pytest.raises(UsageError, match="not an hpsforge repro report \\(format"):
        repro.compare(a, foreign)
    with pytest.raises(UsageError, match="no such report"):
        repro.compare(a, tmp_path / "absent.json")
