"""The conformance suite against an endpoint that is already running (`nox -s conformance -- X --url`)."""

import pytest
from hpsforge.prove import conformance
from hpsforge.ship import serve

pytestmark = pytest.mark.engine

PIPELINE = "image_classification"  # the pipeline the serve_slot fixture builds (tests/conftest.py)


def test_suite_checks_a_running_deployment(serve_slot):
    _, ports = serve_slot
    serve.start(PIPELINE, "cpu", "127.0.0.1", ports)
    code, results = conformance.run([PIPELINE], url=f"127.0.0.1:{ports['http']}",
                                    grpc_url=f"127.0.0.1:{ports['grpc']}",
                                    metrics_url=f"127.0.0.1:{ports['metrics']}")
    assert code == 0, conformance.table(results)
    outcomes = {result["check"]: result["outcome"] for result in results}
    assert outcomes["golden_cases[client-library,grpc]"] == "passed"
    assert outcomes["bad_documents_get_a_422_envelope"] == "passed"
    table = conformance.table(results)
    assert "image_classification" in table and "PASSED" in table
