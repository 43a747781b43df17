"""hpsforge.wheel: a pure-Python wheel written byte for byte the same every time."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hpsforge.bundle import client_wheel
from hpsforge.core.errors import HpsforgeError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EPOCH = 1767225600  # 2026-01-01T00:00:00Z

PYPROJECT = """[project]
name = "demo-pkg"
version = "1.2.3"
description = "A demo package"
requires-python = ">=3.9"
dependencies = ["requests>=2", "numpy; python_version >= '3.9'"]

[project.scripts]
demo-run = "demo_pkg.cli:main"
demo-aaa = "demo_pkg:first"
"""

INFO = "demo_pkg-1.2.3.dist-info"


def _project(root: Path, pyproject: str = PYPROJECT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    package = root / "src" / "demo_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "1.2.3"\n', encoding="utf-8")
    (package / "cli.py").write_text("def main():\n    return 0\n", encoding="utf-8")
    (package / "py.typed").write_text("", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "data.json").write_bytes(b'{"k": "\xc3\xa9"}')
    (package / "tests").mkdir()
    (package / "tests" / "test_demo.py").write_text("def test():\n    pass\n", encoding="utf-8")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0\1")
    (package / "sub" / "stray.pyc").write_bytes(b"\0\1")
    (root / "tests").mkdir()
    (root / "tests" / "test_top.py").write_text("", encoding="utf-8")
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    return _project(tmp_path / "demo")


def _build(project: Path, destination: Path, epoch: int = EPOCH) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    return client_wheel.build(project, destination, epoch)


def test_wheel_name_and_contents(project, tmp_path):
    path = _build(project, tmp_path / "dist")
    assert path == tmp_path / "dist" / "demo_pkg-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert set(names) == {
        "demo_pkg/__init__.py", "demo_pkg/cli.py", "demo_pkg/py.typed", "demo_pkg/sub/__init__.py",
        "demo_pkg/sub/data.json",
        f"{INFO}/METADATA", f"{INFO}/WHEEL", f"{INFO}/entry_points.txt", f"{INFO}/RECORD",
    }
    assert names[-1] == f"{INFO}/RECORD"  # RECORD last, as installers expect
    assert not any("tests" in name or "__pycache__" in name or name.endswith(".pyc") for name in names)


def test_two_builds_are_byte_identical(project, tmp_path):
    first = _build(project, tmp_path / "a").read_bytes()
    # A later build, with the source files' times and modes changed, gives the same bytes.
    for path in project.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
            path.touch()
    time.sleep(0.01)
    second = _build(project, tmp_path / "b").read_bytes()
    assert first == second


def test_rebuilding_replaces_the_wheel(project, tmp_path):
    path = _build(project, tmp_path / "dist")
    before = path.read_bytes()
    (project / "src" / "demo_pkg" / "cli.py").write_text("def main():\n    return 1\n", encoding="utf-8")
    assert _build(project, tmp_path / "dist").read_bytes() != before
    assert [entry.name for entry in (tmp_path / "dist").iterdir()] == [path.name]  # no temp files left


def test_different_epochs_give_different_wheels(project, tmp_path):
    assert _build(project, tmp_path / "a").read_bytes() != _build(project, tmp_path / "b", EPOCH + 86400).read_bytes()


def test_entries_have_the_fixed_date_and_mode(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(2026, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o644}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}


def test_epoch_before_1980_is_clamped(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist", 0)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_record_lists_every_file_with_hash_and_size(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        record = archive.read(f"{INFO}/RECORD").decode("utf-8")
        contents = {name: archive.read(name) for name in archive.namelist()}
    rows = [line.split(",") for line in record.splitlines()]
    assert all(len(row) == 3 for row in rows)
    assert [row[0] for row in rows] == list(contents)  # every file, in archive order
    assert rows[-1] == [f"{INFO}/RECORD", "", ""]
    for name, digest, size in rows[:-1]:
        expected = base64.urlsafe_b64encode(hashlib.sha256(contents[name]).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"
        assert "=" not in expected and "+" not in expected and "/" not in expected
        assert int(size) == len(contents[name])
    assert record.endswith("\n")


def test_files_are_copied_byte_for_byte(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        assert archive.read("demo_pkg/sub/data.json") == (project / "src" / "demo_pkg" / "sub" / "data.json").read_bytes()
        assert archive.read("demo_pkg/py.typed") == b""


def test_metadata(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        metadata = archive.read(f"{INFO}/METADATA").decode("utf-8")
    assert metadata.splitlines() == [
        "Metadata-Version: 2.1",
        "Name: demo-pkg",
        "Version: 1.2.3",
        "Summary: A demo package",
        "Requires-Python: >=3.9",
        "Requires-Dist: requests>=2",
        "Requires-Dist: numpy; python_version >= '3.9'",
    ]


def test_wheel_file(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        text = archive.read(f"{INFO}/WHEEL").decode()
    assert "Wheel-Version: 1.0\n" in text and "Root-Is-Purelib: true\n" in text and "Tag: py3-none-any\n" in text


def test_entry_points_are_sorted(project, tmp_path):
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        text = archive.read(f"{INFO}/entry_points.txt").decode()
    assert text == "[console_scripts]\ndemo-aaa = demo_pkg:first\ndemo-run = demo_pkg.cli:main\n"


def test_minimal_project_without_scripts_or_dependencies(tmp_path):
    project = _project(tmp_path / "demo", '[project]\nname = "demo-pkg"\nversion = "0.1"\n')
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        names = archive.namelist()
        metadata = archive.read("demo_pkg-0.1.dist-info/METADATA").decode()
    assert "demo_pkg-0.1.dist-info/entry_points.txt" not in names
    assert metadata == "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 0.1\n"


def test_flat_layout(tmp_path):
    project = tmp_path / "flat"
    (project / "demo_pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "demo-pkg"\nversion = "2"\n', encoding="utf-8")
    (project / "demo_pkg" / "__init__.py").write_text("", encoding="utf-8")
    with zipfile.ZipFile(_build(project, tmp_path / "dist")) as archive:
        assert "demo_pkg/__init__.py" in archive.namelist()


def test_project_without_the_package(tmp_path):
    project = tmp_path / "empty"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo-pkg"\nversion = "1"\n', encoding="utf-8")
    (project / "src" / "other").mkdir(parents=True)
    (project / "src" / "other" / "__init__.py").write_text("", encoding="utf-8")
    with pytest.raises(HpsforgeError) as caught:
        _build(project, tmp_path / "dist")
    assert str(project) in str(caught.value) and "demo_pkg" in str(caught.value)
    assert not list((tmp_path / "dist").iterdir())


def test_package_without_init(tmp_path):
    project = _project(tmp_path / "demo")
    (project / "src" / "demo_pkg" / "__init__.py").unlink()
    with pytest.raises(HpsforgeError, match="with an __init__.py"):
        _build(project, tmp_path / "dist")


@pytest.mark.parametrize("pyproject", [None, "[tool.x]\n", '[project]\nname = "demo-pkg"\n', "[project\n"])
def test_unreadable_pyproject(tmp_path, pyproject):
    project = tmp_path / "bad"
    project.mkdir()
    if pyproject is not None:
        (project / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    with pytest.raises(HpsforgeError) as caught:
        _build(project, tmp_path / "dist")
    assert str(project / "pyproject.toml") in str(caught.value)
    assert "name and version" in str(caught.value)


def test_real_client_wheel(tmp_path):
    path = client_wheel.build(PROJECT_ROOT / "sdk" / "client", tmp_path, EPOCH)
    assert path == tmp_path / "hps_client-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        metadata = archive.read("hps_client-0.1.0.dist-info/METADATA").decode()
        entry_points = archive.read("hps_client-0.1.0.dist-info/entry_points.txt").decode()
    assert "hps_client/__init__.py" in names
    assert "hps_client/py.typed" in names
    assert not any(name.startswith("tests/") or "/tests/" in name or "__pycache__" in name for name in names)
    assert all(name.startswith(("hps_client/", "hps_client-0.1.0.dist-info/")) for name in names)
    assert "Name: hps-client\n" in metadata and "Requires-Dist: pydantic>=2,<3\n" in metadata
    assert "hps-client = hps_client.cli:main" in entry_points
    (tmp_path / "again").mkdir()
    assert client_wheel.build(PROJECT_ROOT / "sdk" / "client", tmp_path / "again", EPOCH).read_bytes() == path.read_bytes()


def test_pip_installs_the_wheel(project, tmp_path):
    """pip accepts the wheel (RECORD, METADATA, WHEEL) and installs the files and the script."""
    path = _build(project, tmp_path / "dist")
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "--no-compile", "--target", str(target), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (target / "demo_pkg" / "sub" / "data.json").exists()
    assert (target / INFO / "METADATA").exists()
    assert (target / "bin" / "demo-run").exists()
