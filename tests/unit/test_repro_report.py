"""Repro reports: verdicts, JUnit, and comparing two machines' reports."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from hpsforge.core.errors import DigestMismatchError, ExitCode, InputUnavailableError, NewInputsError, UsageError
from hpsforge.prove import repro
from hpsforge.prove.repro import CompareOutcome, Verdict

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _image(
    role: str,
    first: str | None = DIGEST,
    rebuilt: str = DIGEST,
    verdict: Verdict = Verdict.REPRODUCIBLE,
    inputs: str = "1" * 64,
) -> repro.ImageResult:
    return repro.ImageResult(
        role=role,
        kind="pipeline",
        target="cpu",
        pipeline=role,
        inputs_sha256=inputs,
        recorded=first,
        first=first,
        rebuilt=rebuilt,
        verdict=verdict,
        seconds=1.0,
    )


def _report(*images: repro.ImageResult, revision: str = "abc123", kernel: str = "6.1") -> repro.ReproReport:
    return repro.ReproReport(
        format=repro.FORMAT,
        revision=revision,
        created="2026-12-01T00:00:00Z",
        targets=["cpu"],
        from_archive=False,
        machine=repro.Machine(engine="26.1.5", buildx="0.13.1", kernel=kernel, architecture="x86_64"),
        images=list(images),
    )


def _write(tmp_path, name: str, report: repro.ReproReport):
    path = tmp_path / name
    path.write_text(report.model_dump_json())
    return path


def test_the_worst_verdict_decides_the_run():
    assert _report(_image("a"), _image("b")).worst() is Verdict.REPRODUCIBLE
    assert _report().worst() is Verdict.REPRODUCIBLE
    assert _report(_image("a", verdict=Verdict.NEW_INPUTS), _image("b")).worst() is Verdict.NEW_INPUTS
    assert (
        _report(_image("a", verdict=Verdict.NEW_INPUTS), _image("b", verdict=Verdict.INPUTS_UNAVAILABLE)).worst()
        is Verdict.INPUTS_UNAVAILABLE
    )
    assert (
        _report(
            _image("a", verdict=Verdict.NOT_REPRODUCIBLE),
            _image("b", verdict=Verdict.INPUTS_UNAVAILABLE),
            _image("c", verdict=Verdict.NEW_INPUTS),
        ).worst()
        is Verdict.NOT_REPRODUCIBLE
    )


def test_each_verdict_carries_its_exit_code_and_error_kind():
    assert [(verdict.value, verdict.exit_code, verdict.error) for verdict in Verdict] == [
        ("reproducible", ExitCode.SUCCESS, None),
        ("new-inputs", ExitCode.NEW_INPUTS, NewInputsError),
        ("inputs-unavailable", ExitCode.INPUT_UNAVAILABLE, InputUnavailableError),
        ("not-reproducible", ExitCode.DIGEST_MISMATCH, DigestMismatchError),
    ]
    assert [int(verdict.exit_code) for verdict in Verdict] == [0, 7, 4, 6]
    assert Verdict("not-reproducible") is Verdict.NOT_REPRODUCIBLE and f"{Verdict.NEW_INPUTS}" == "new-inputs"


def test_report_json_keeps_the_verdict_strings(tmp_path):
    report = _report(*(_image(verdict.value, verdict=verdict) for verdict in Verdict))
    written = json.loads(report.model_dump_json())
    assert [image["verdict"] for image in written["images"]] == [
        "reproducible",
        "new-inputs",
        "inputs-unavailable",
        "not-reproducible",
    ]
    read = repro.read_report(_write(tmp_path, "report.json", report))
    assert [image.verdict for image in read.images] == list(Verdict)


@pytest.mark.parametrize("verdict", [Verdict.NOT_REPRODUCIBLE, Verdict.INPUTS_UNAVAILABLE, Verdict.NEW_INPUTS])
def test_fail_on_raises_with_the_verdicts_exit_code(verdict, tmp_path):
    with pytest.raises(verdict.error) as failed:
        repro.fail_on(_report(_image("a"), _image("b", verdict=verdict)), tmp_path)
    assert failed.value.exit_code == verdict.exit_code and verdict.value in str(failed.value)
    assert (failed.value.hint is not None) == (verdict is Verdict.NEW_INPUTS)
    repro.fail_on(_report(_image("a")), tmp_path)  # all reproducible: no error


def test_junit_has_one_testcase_per_image_and_marks_each_verdict():
    report = _report(
        _image("ok"),
        _image("drift", rebuilt=OTHER, verdict=Verdict.NOT_REPRODUCIBLE),
        _image("gone", verdict=Verdict.INPUTS_UNAVAILABLE),
        _image("fresh", verdict=Verdict.NEW_INPUTS),
    )
    suite = ElementTree.fromstring(repro.junit(report))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "4",
        "1",
        "1",
        "1",
    )
    kinds = {case.get("name"): [child.tag for child in case] for case in suite}
    assert kinds == {"ok": [], "drift": ["failure"], "gone": ["error"], "fresh": ["skipped"]}


def test_compare_names_the_image_that_differs_with_the_same_inputs(tmp_path):
    a = _write(
        tmp_path,
        "a.json",
        _report(
            _image("base"), _image("ocr"), _image("lac", inputs="2" * 64), _image("gpu", first=None), _image("gone")
        ),
    )
    b = _write(
        tmp_path,
        "b.json",
        _report(_image("base"), _image("ocr", first=OTHER), _image("lac", first=OTHER), _image("gpu"), kernel="6.8"),
    )
    comparison = repro.compare(a, b)
    assert {image.role: image.outcome for image in comparison.images} == {
        "base": CompareOutcome.SAME,
        "ocr": CompareOutcome.DIFFERS,
        "lac": CompareOutcome.INPUTS_DIFFER,
        "gpu": CompareOutcome.NOT_BUILT,
        "gone": CompareOutcome.NOT_BUILT,
    }
    (differing,) = comparison.differing()
    assert differing.role == "ocr" and (differing.first.first, differing.second.first) == (DIGEST, OTHER)
    lines = comparison.lines()
    assert lines[0].startswith("ocr: DIFFERS with the same inputs")
    assert DIGEST in lines[0] and OTHER in lines[0] and "6.8" in lines[0]
    assert lines[1:] == ["lac: inputs differ (222222222222 vs 111111111111): not compared"]  # not a difference
    assert repro.compare(a, a).differing() == [] and repro.compare(a, a).lines() == []


def test_compare_fails_the_session_by_the_typed_outcome_naming_each_image(tmp_path, capsys):
    from hpsforge import cli

    a = _write(tmp_path, "a.json", _report(_image("base"), _image("ocr"), _image("lac", inputs="2" * 64)))
    b = _write(tmp_path, "b.json", _report(_image("base"), _image("ocr", first=OTHER), _image("lac", first=OTHER)))
    with pytest.raises(DigestMismatchError, match="1 image\\(s\\) differ between .*: ocr$") as failed:
        cli.run_repro(["--compare", str(a), str(b)])
    assert failed.value.exit_code == 6 and "ocr: DIFFERS" in capsys.readouterr().out
    only_inputs = _write(tmp_path, "c.json", _report(_image("base"), _image("ocr"), _image("lac")))
    cli.run_repro(["--compare", str(a), str(only_inputs)])  # inputs differ: said, not a failure
    assert "lac: inputs differ" in capsys.readouterr().out


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
