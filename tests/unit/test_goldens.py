"""Golden cases (build/bundle/goldens.py): loading with clear errors, references, and the checks."""

import pytest

from hpsforge.bundle import goldens
from hpsforge.core.pipelines import load_pipelines
from hpsforge.core.settings import PROJECT_ROOT

VALID = """
[conformance]
model = "m"
valid_case = "ok"
required_field = "x"

[[cases]]
name = "ok"
model = "m"
request = { x = "file:in.bin", key = "${k}" }
exact = { "a.0.b" = "yes" }
close = { "s" = [[1.0, 2.0], 0.1] }
at_least = { "n" = 3 }
length = { "a" = 1 }
save = { k = "a.0.b" }
"""


def _pipeline(tmp_path, text):
    (tmp_path / "goldens").mkdir()
    (tmp_path / "goldens" / "cases.toml").write_text(text)
    return tmp_path


def test_every_pipeline_has_loadable_goldens():
    for name in load_pipelines():
        golden = goldens.load_file(PROJECT_ROOT / "pipelines" / name)
        assert golden.valid_case.error_code is None, f"{name}: the valid case must expect success"


@pytest.mark.parametrize(
    "text, message",
    [
        ("not [ toml", "not valid TOML"),
        ("[[cases]]\nname = 'a'\nmodel = 'm'\nrequest = {}\n", "conformance: Field required"),
        (VALID.replace('valid_case = "ok"', 'valid_case = "nope"'), "valid_case 'nope' is not a case"),
        (VALID.replace("exact =", "exakt ="), "exakt: Extra inputs are not permitted"),
    ],
)
def test_bad_golden_files_name_the_file_and_the_problem(tmp_path, text, message):
    folder = _pipeline(tmp_path, text)
    with pytest.raises(goldens.GoldenError, match="cases.toml") as raised:
        goldens.load_file(folder)
    assert message in str(raised.value)


def test_missing_golden_file_is_named(tmp_path):
    with pytest.raises(goldens.GoldenError, match="cases.toml: cannot be read"):
        goldens.load_file(tmp_path)


def test_references_resolve_and_unknown_saved_values_are_named(tmp_path):
    folder = _pipeline(tmp_path, VALID)
    (folder / "goldens" / "in.bin").write_bytes(b"abc")
    case = goldens.load(folder)[0]
    assert goldens.resolve(case.request, folder / "goldens", None, {"k": "v"}) == {"x": "YWJj", "key": "v"}
    with pytest.raises(goldens.GoldenError, match="no earlier case saved 'k'"):
        goldens.resolve(case.request, folder / "goldens", None, {})
    with pytest.raises(ValueError, match="fixtures are not available"):
        goldens.resolve("fixture:a/b", folder, None, {})


def test_checks_pass_and_fail_as_stated(tmp_path):
    case = goldens.load(_pipeline(tmp_path, VALID))[0]
    good = {"errorCode": 0, "result": {"a": [{"b": "yes"}], "s": [1.05, 1.95], "n": 3}}
    assert goldens.problems(case, good) == []
    saved = {}
    goldens.remember(case, good, saved)
    assert saved == {"k": "yes"}
    bad = {"errorCode": 0, "result": {"a": [{"b": "no"}, {}], "s": [1.2, 2.0], "n": 2}}
    found = goldens.problems(case, bad)
    assert len(found) == 4 and any("a.0.b" in line for line in found) and any("length" in line for line in found)
    assert goldens.problems(case, {"errorCode": 422, "errorMsg": "x"}) == ["error envelope 422: x"]


def test_expected_errors_are_checked():
    case = goldens.GoldenCase(name="e", model="m", request={}, error_code=422, error_contains="base64")
    assert goldens.problems(case, {"errorCode": 422, "errorMsg": "image: not valid base64"}) == []
    assert len(goldens.problems(case, {"errorCode": 0, "result": {}})) == 2
