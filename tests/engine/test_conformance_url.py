"""The conformance suite against an endpoint that is already running (`nox -s conformance -- X --url`)."""

from hpsforge.prove import conformance
from hpsforge.ship import serve

PIPELINE = "image_classification"  # the pipeline the serve_slot fixture builds (tests/conftest.py)


def test_suite_checks_a_running_deployment(serve_slot):
    _, ports = serve_slot
    serve.start(PIPELINE, "cpu", "127.0.0.1", ports)
    checked = conformance.run(
        [PIPELINE],
        url=f"127.0.0.1:{ports['http']}",
        grpc_url=f"127.0.0.1:{ports['grpc']}",
        metrics_url=f"127.0.0.1:{ports['metrics']}",
    )
    assert checked.passed, conformance.table(checked.results)
    outcomes = {result.check: result.outcome for result in checked.results}
    assert outcomes["golden_cases[client-library,grpc]"] is conformance.Outcome.PASSED
    assert outcomes["bad_documents_get_a_422_envelope"] is conformance.Outcome.PASSED
    table = conformance.table(checked.results)
    assert "image_classification" in table and "PASSED" in table
