"""prove/release.py without a registry: rebuild statements signed into files, and what verify prints."""

from __future__ import annotations

import json
from pathlib import Path

from hpsforge.locks.images_lock import ImagesLock
from hpsforge.prove import provenance, release, repro
from hpsforge.ship import signing


def _report(images: list[repro.ImageResult]) -> repro.ReproReport:
    return repro.ReproReport(
        format="hpsforge-repro/1", revision="r", created="2026-01-01T00:00:00Z", targets=["cpu"], from_archive=False,
        machine=repro.Machine(engine="e", buildx="b", kernel="k", architecture="amd64"), images=images,
    )  # fmt: skip


def _result(role: str, rebuilt: str, inputs: str, verdict: repro.Verdict) -> repro.ImageResult:
    return repro.ImageResult(
        role=role, kind="runtime", target="cpu", pipeline=None, inputs_sha256=inputs, recorded=rebuilt,
        first=rebuilt, rebuilt=rebuilt, verdict=verdict, seconds=1.0,
    )  # fmt: skip


def test_only_a_reproducible_rebuild_of_the_recorded_digest_is_attested(tmp_path):
    recorded = ImagesLock.read().images["runtime-cpu"]
    private_path, public_path = signing.generate(tmp_path / "rebuilder", b"p")
    private = signing.load_private(private_path, b"p")
    report = _report(
        [
            _result("runtime-cpu", recorded.digest, recorded.input_sha256, repro.Verdict.REPRODUCIBLE),
            _result("pipeline-ocr-cpu", "sha256:" + "1" * 64, "2" * 64, repro.Verdict.REPRODUCIBLE),  # not recorded
            _result("base", "sha256:" + "3" * 64, "4" * 64, repro.Verdict.NOT_REPRODUCIBLE),
        ]
    )
    assert release.attest_rebuilds(report, private, None, tmp_path, signing) == 1
    (written,) = (tmp_path / "attestations").iterdir()
    assert written.name == "runtime-cpu.rebuild.dsse.json"
    opened = signing.open_envelope(
        written.read_bytes(), provenance.PAYLOAD_TYPE, signing.load_public(public_path), str(written)
    )
    statement = provenance.RebuildStatement.parse(opened, "test")
    assert statement.digest == recorded.digest and statement.predicate.input_sha256 == recorded.input_sha256
    assert json.loads(opened)["predicateType"] == provenance.REBUILD_PREDICATE_TYPE


def test_what_verify_prints_names_the_rebuilders_only_when_asked():
    verified = release.VerifiedRelease(
        reference="r@sha256:" + "a" * 64, key=Path("k.pub"), role="pipeline-ocr-cpu", inputs=12,
        rebuilders=[Path("a.pub")], required_rebuilds=1, seconds=0.5,
    )  # fmt: skip
    assert verified.lines() == [
        "hpsforge: 1 rebuild(s) from distinct keys attest it: a.pub",
        f"hpsforge: r@sha256:{'a' * 64}: signature and provenance verify with k.pub; pipeline-ocr-cpu, "
        "12 inputs, each the one the locks pin (0.50 s)",
    ]
    without = release.VerifiedRelease(**{**verified.__dict__, "rebuilders": [], "required_rebuilds": 0})
    assert len(without.lines()) == 1
