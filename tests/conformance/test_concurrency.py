"""Check 4: 32 concurrent requests mixing valid and invalid ones, several rounds: each request gets
its own answer (its own logId, its own golden result or its own error), whatever Triton's dynamic
batcher groups together."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import wire

from hpsforge.bundle import goldens
from hpsforge.core.settings import settings

CONCURRENT, ROUNDS = 32, 3


def _self_contained(golden: goldens.GoldenFile) -> list[goldens.GoldenCase]:
    """Cases of the conformance model that need nothing saved by an earlier case."""
    return [
        case
        for case in golden.cases
        if case.model == golden.conformance.model and not re.search(r"\$\{\w+\}", json.dumps(case.request))
    ]


def test_concurrent_mixed_requests_each_get_their_own_answer(pipeline, server, fixtures_dir):
    pipeline_dir = settings().pipelines_dir / pipeline
    golden = goldens.load_file(pipeline_dir)
    cases = _self_contained(golden)
    invalid = [
        goldens.GoldenCase(name="not_json", model=golden.conformance.model, request={}, error_code=422),
        goldens.GoldenCase(name="missing_field", model=golden.conformance.model, request={}, error_code=422),
    ]
    requests = {case.name: goldens.resolve(case.request, pipeline_dir / "goldens", fixtures_dir, {}) for case in cases}

    def send(job: tuple[int, goldens.GoldenCase]) -> str | None:
        number, case = job
        log_id = f"conformance-{number}-{case.name}"
        if case.name == "not_json":
            document = f'{{"logId": "{log_id}", this is not JSON'
        elif case.name == "missing_field":
            document = {"logId": log_id}
        else:
            document = {**requests[case.name], "logId": log_id}
        status, envelope = wire.infer(server.http, golden.conformance.model, document)
        if status != 200:
            return f"{log_id}: HTTP {status} {str(envelope)[:200]}"
        if case.name != "not_json" and envelope.get("logId") != log_id:
            return f"{log_id}: answered with logId {envelope.get('logId')!r} (another request's answer)"
        found = goldens.problems(case, envelope)
        return f"{log_id}: " + "; ".join(found) if found else None

    mix = [*cases, *invalid]
    failures = []
    with ThreadPoolExecutor(CONCURRENT) as pool:
        for round_number in range(ROUNDS):
            jobs = [
                (round_number * CONCURRENT + index, mix[(index + round_number) % len(mix)])
                for index in range(CONCURRENT)
            ]
            failures += [problem for problem in pool.map(send, jobs) if problem]
    assert not failures, f"{len(failures)} of {CONCURRENT * ROUNDS} answers wrong:\n" + "\n".join(failures[:10])


def test_several_documents_in_one_request_each_get_their_own_answer(pipeline, server, fixtures_dir):
    """One Triton request of shape [3, 1] (valid, invalid, valid): each output slot answers the
    document in the same slot, for plain models and ensembles alike."""
    pipeline_dir = settings().pipelines_dir / pipeline
    golden = goldens.load_file(pipeline_dir)
    target, valid_case = golden.conformance, golden.valid_case
    valid = goldens.resolve(valid_case.request, pipeline_dir / "goldens", fixtures_dir, {})
    log_ids = [f"several-{slot}-{pipeline}" for slot in range(3)]
    documents = [
        {**valid, "logId": log_ids[0]},
        {**{k: v for k, v in valid.items() if k != target.required_field}, "logId": log_ids[1]},
        {**valid, "logId": log_ids[2]},
    ]
    body = wire.infer_body([json.dumps(document) for document in documents], shape=[3, 1])
    status, raw = wire.call(server.http, "POST", f"/v2/models/{target.model}/infer", body)
    assert status == 200, f"a [3, 1] request answered HTTP {status}: {raw[:500]!r}"
    (output,) = json.loads(raw)["outputs"]
    assert output["name"] == "output" and output["shape"] == [3, 1], f"output tensor {output['name']} {output['shape']}"
    envelopes = [json.loads(text) for text in output["data"]]
    assert [envelope.get("logId") for envelope in envelopes] == log_ids, "slots answered out of order"
    problems = {0: goldens.problems(valid_case, envelopes[0]), 2: goldens.problems(valid_case, envelopes[2])}
    assert not any(problems.values()), f"valid documents: {problems}"
    assert envelopes[1].get("errorCode") == 422 and target.required_field in envelopes[1].get("errorMsg", ""), (
        f"the invalid document (no {target.required_field!r}): {envelopes[1]}"
    )
