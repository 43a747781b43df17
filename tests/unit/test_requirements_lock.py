"""hpsforge.requirements_lock: parsing pip locks, their header and their problems (no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpsforge.core.errors import HpsforgeError
from hpsforge.locks import requirements_lock
from hpsforge.locks.requirements_lock import (
    LockedRequirement,
    canonical_name,
    header,
    parse,
    problems,
    read,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = PROJECT_ROOT / "lock"
HEX64 = re.compile(r"^[0-9a-f]{64}$")

DECLARED = "d" * 64
H1, H2, H3, H4 = "1" * 64, "2" * 64, "a" * 64, "b" * 64
REFRESH = "nox -s freeze -- cpu"

LOCK_TEXT = f"""\
# pip requirements of the cpu target.
# Written by `nox -s freeze`; do not edit: change the declaration and re-run the freeze.
# input-sha256: {DECLARED}
aiohappyeyeballs==2.7.1 \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
    # via aiohttp
PyYAML==6.0.2 \\
    --hash=sha256:{H3}
    # via
    #   nvidia-pytriton
    #   tritonclient
pip_tools==7.6.2 --hash=sha256:{H4}  # an inline comment

typing-extensions==4.12.2 ; python_version < "3.13" \\
    --hash=sha256:{H1}
"""


def _lock(text: str = LOCK_TEXT, path: Path = Path("lock/requirements/cpu.txt")):
    return parse(text, path)


# --- parse --------------------------------------------------------------------------------------


def test_parse_header_continuations_hashes_and_comments():
    lock = _lock()
    assert lock.input_sha256 == DECLARED
    assert lock.path == Path("lock/requirements/cpu.txt")
    assert lock.requirements == (
        LockedRequirement("aiohappyeyeballs", "2.7.1", frozenset({H1, H2})),
        LockedRequirement("PyYAML", "6.0.2", frozenset({H3})),
        LockedRequirement("pip_tools", "7.6.2", frozenset({H4})),
        LockedRequirement("typing-extensions", "4.12.2", frozenset({H1})),
    )


def test_by_name_uses_canonical_names():
    by_name = _lock().by_name()
    assert sorted(by_name) == ["aiohappyeyeballs", "pip-tools", "pyyaml", "typing-extensions"]
    assert by_name["pyyaml"].version == "6.0.2"
    assert by_name["pip-tools"].hashes == frozenset({H4})


def test_parse_without_header_has_no_input_hash():
    lock = _lock(f"foo==1.0 --hash=sha256:{H1}\n")
    assert lock.input_sha256 is None
    assert [r.name for r in lock.requirements] == ["foo"]


def test_parse_ignores_malformed_hashes():
    # Upper-case, short and over-long digests are not sha256 hashes of the lock format.
    text = (
        f"foo==1.0 \\\n    --hash=sha256:{'A' * 64} \\\n    --hash=sha256:{'1' * 63} \\\n    --hash=sha256:{'1' * 65}\n"
    )
    assert _lock(text).requirements[0].hashes == frozenset()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("PyYAML", "pyyaml"),
        ("pip_tools", "pip-tools"),
        ("pip-tools", "pip-tools"),
        ("Zope.Interface", "zope-interface"),
        ("a__b-._c", "a-b-c"),
    ],
)
def test_canonical_name(name, expected):
    assert canonical_name(name) == expected


@pytest.mark.parametrize("bad_line", ["paddlepaddle>=3", "-e ./x", "foo[bar]==1.0", "--index-url https://x"])
def test_a_line_that_is_not_a_pin_names_file_and_line(bad_line):
    text = f"# input-sha256: {DECLARED}\nfoo==1.0 \\\n    --hash=sha256:{H1}\n{bad_line}\n"
    path = Path("lock/requirements/cpu.txt")
    with pytest.raises(HpsforgeError) as caught:
        parse(text, path)
    message = str(caught.value)
    assert f"{path}:4:" in message
    assert bad_line in message
    assert "nox -s freeze" in message


def test_line_number_of_a_bad_continued_line_is_its_first_line():
    text = f"foo==1.0 \\\n    --hash=sha256:{H1}\n# note\nbar>=2 \\\n    --hash=sha256:{H2}\n"
    with pytest.raises(HpsforgeError, match=r"x\.txt:4:"):
        parse(text, Path("x.txt"))


def test_comment_ending_in_backslash_does_not_swallow_the_next_pin():
    text = f"# see C:\\\nfoo==1.0 --hash=sha256:{H1}\n"
    assert [r.name for r in _lock(text).requirements] == ["foo"]


# --- header and read ----------------------------------------------------------------------------


def test_header_round_trips():
    text = header("the cpu target", DECLARED)
    assert text.startswith("# ")
    assert DECLARED in text
    assert all(line.startswith("# ") for line in text.splitlines())
    assert text.endswith("\n")
    lock = parse(text + f"foo==1.0 --hash=sha256:{H1}\n", Path("x.txt"))
    assert lock.input_sha256 == DECLARED


def test_read_missing_file_says_freeze(tmp_path):
    path = tmp_path / "cpu.txt"
    with pytest.raises(HpsforgeError) as caught:
        read(path)
    assert str(path) in str(caught.value)
    assert "nox -s freeze" in str(caught.value)


def test_read_parses_the_file(tmp_path):
    path = tmp_path / "cpu.txt"
    path.write_text(LOCK_TEXT, encoding="utf-8")
    lock = read(path)
    assert lock.path == path
    assert lock == _lock(path=path)


# --- problems -----------------------------------------------------------------------------------


def test_good_lock_has_no_problems():
    assert problems(_lock(), DECLARED, REFRESH) == []


def test_missing_header_is_a_problem():
    lock = _lock(LOCK_TEXT.replace(f"# input-sha256: {DECLARED}\n", ""))
    found = problems(lock, DECLARED, REFRESH)
    assert len(found) == 1
    assert "input-sha256" in found[0]
    assert REFRESH in found[0]


def test_stale_hash_is_a_problem():
    found = problems(_lock(), "e" * 64, REFRESH)
    assert len(found) == 1
    assert "stale" in found[0]
    assert REFRESH in found[0]
    assert "cpu.txt" in found[0]


def test_requirement_without_hash_is_named():
    text = LOCK_TEXT + "shapely==2.0.6\n    # via -r cpu.in\n"
    found = problems(_lock(text), DECLARED, REFRESH)
    assert len(found) == 1
    assert "shapely==2.0.6" in found[0]
    assert "--hash" in found[0]
    assert REFRESH in found[0]


def test_empty_lock_is_a_problem():
    found = problems(_lock(header("empty", DECLARED)), DECLARED, REFRESH)
    assert len(found) == 1
    assert "no requirements" in found[0]
    assert REFRESH in found[0]


def test_problems_accumulate():
    text = "foo==1.0\nbar==2.0\n"
    found = problems(_lock(text), DECLARED, REFRESH)
    assert len(found) == 3  # no header, and two unhashed pins
    assert any("foo==1.0" in line for line in found)
    assert any("bar==2.0" in line for line in found)


# --- the committed locks ------------------------------------------------------------------------

REAL_LOCKS = sorted((LOCK_DIR / "requirements").glob("*.txt")) + [
    LOCK_DIR / "rc-requirements.txt",
]


def test_there_are_target_locks():
    assert {p.name for p in (LOCK_DIR / "requirements").glob("*.txt")} >= {"cpu.txt", "gpu-cu118.txt", "gpu-cu12.txt"}


@pytest.mark.parametrize("path", REAL_LOCKS, ids=lambda p: str(p.relative_to(LOCK_DIR)))
def test_committed_lock_parses_and_every_pin_is_hashed(path):
    lock = requirements_lock.read(path)
    assert lock.input_sha256 is not None and HEX64.match(lock.input_sha256)
    assert len(lock.requirements) >= 1
    for requirement in lock.requirements:
        assert requirement.hashes, f"{requirement.name} has no hash"
        assert all(HEX64.match(digest) for digest in requirement.hashes)
    # No pin is lost: every `name==` line of the file is a requirement of the lock.
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(pins) == sorted(r.name for r in lock.requirements)
