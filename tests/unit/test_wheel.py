"""hpsforge.bundle.client_wheel: the client wheel, built by flit_core through `python -m build`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from hpsforge.bundle import client_wheel
from hpsforge.core.errors import HpsforgeError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLIENT = PROJECT_ROOT / "sdk" / "client"
EPOCH = 1767225600  # 2026-01-01T00:00:00Z
WHEEL = "hps_client-0.1.0-py3-none-any.whl"
INFO = "hps_client-0.1.0.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return client_wheel.build(CLIENT, tmp_path_factory.mktemp("dist"), EPOCH)


def test_wheel_name_and_contents(wheel):
    assert wheel.name == WHEEL
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    package = sorted(
        path.relative_to(CLIENT / "src").as_posix()
        for path in (CLIENT / "src" / "hps_client").iterdir()
        if path.is_file() and path.suffix != ".pyc"
    )
    assert "hps_client/py.typed" in package
    assert names == [*package, f"{INFO}/entry_points.txt", f"{INFO}/WHEEL", f"{INFO}/METADATA", f"{INFO}/RECORD"]
    assert [entry.name for entry in wheel.parent.iterdir()] == [WHEEL]  # no build leftovers


def test_metadata_holds_the_readme_and_the_dependencies(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read(f"{INFO}/METADATA").decode("utf-8"))
        entry_points = archive.read(f"{INFO}/entry_points.txt").decode()
        generator = archive.read(f"{INFO}/WHEEL").decode()
    assert (metadata["Name"], metadata["Version"]) == ("hps-client", "0.1.0")
    assert metadata["Description-Content-Type"] == "text/markdown"
    # The README its metadata names is the description (flit ends it with one more newline).
    assert metadata.get_payload().rstrip("\n") == (CLIENT / "README.md").read_text(encoding="utf-8").rstrip("\n")
    assert "pydantic>=2,<3" in metadata.get_all("Requires-Dist")
    assert "hps-client=hps_client.cli:main" in entry_points.replace(" ", "")
    assert "Generator: flit 4.2.0" in generator


def test_every_entry_has_the_epochs_time_and_a_normal_mode(wheel):
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(2026, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 & 0o777 for info in infos} == {0o644}


def test_two_builds_are_byte_identical(wheel, tmp_path):
    """Another build, from a copy elsewhere whose files have other times and modes: the same bytes."""
    copy = tmp_path / "elsewhere" / "client"
    shutil.copytree(CLIENT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
            os.utime(path, (1_000_000_000, 1_000_000_000))
    again = client_wheel.build(copy, tmp_path / "dist", EPOCH)
    assert again.name == wheel.name and again.read_bytes() == wheel.read_bytes()


def test_another_epoch_gives_other_bytes(wheel, tmp_path):
    """The epoch is every entry's time, so another one changes the bytes (and nothing else)."""
    later = client_wheel.build(CLIENT, tmp_path, EPOCH + 86400)
    assert later.read_bytes() != wheel.read_bytes()
    with zipfile.ZipFile(later) as new, zipfile.ZipFile(wheel) as old:
        assert {info.date_time for info in new.infolist()} == {(2026, 1, 2, 0, 0, 0)}
        assert [(name, new.read(name)) for name in new.namelist()] == [
            (name, old.read(name)) for name in old.namelist()
        ]


def test_an_epoch_before_1980_is_clamped(tmp_path):
    with zipfile.ZipFile(client_wheel.build(CLIENT, tmp_path, 0)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_rebuilding_replaces_the_wheel(wheel, tmp_path):
    destination = tmp_path / "dist"
    destination.mkdir()
    (destination / WHEEL).write_bytes(b"an older wheel")
    assert client_wheel.build(CLIENT, destination, EPOCH).read_bytes() == wheel.read_bytes()
    assert [entry.name for entry in destination.iterdir()] == [WHEEL]


def test_built_from_the_project_root(wheel, tmp_path, monkeypatch):
    """The project's own build/ folder (hpsforge) does not shadow PyPA's build."""
    monkeypatch.chdir(PROJECT_ROOT)
    assert client_wheel.build(CLIENT, tmp_path, EPOCH).read_bytes() == wheel.read_bytes()


def test_pip_installs_the_wheel_and_it_imports(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (target / "hps_client" / "py.typed").exists() and (target / "bin" / "hps-client").exists()
    # The installed copy, not the checkout's sdk/client/src (its dependencies from the host environment).
    done = subprocess.run(
        [sys.executable, "-c", "import hps_client; print(hps_client.__file__, hps_client.Client)"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(target / "hps_client" / "__init__.py"))


# --- failures: one HpsforgeError naming the project and quoting build's last lines ----------------


def _project(root: Path, pyproject: str) -> Path:
    (root / "src" / "demo_pkg").mkdir(parents=True)
    (root / "src" / "demo_pkg" / "__init__.py").write_text('"""Demo."""\n', encoding="utf-8")
    (root / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return root


FLIT = '[build-system]\nrequires = ["flit_core==4.2.0"]\nbuild-backend = "flit_core.buildapi"\n'


def _failure(project: Path, destination: Path) -> str:
    with pytest.raises(HpsforgeError) as caught:
        client_wheel.build(project, destination, EPOCH)
    message = str(caught.value)
    assert str(project) in message and "python -m build" in message
    assert "Traceback" not in message and '  File "' not in message and "TIP " not in message
    assert list(destination.iterdir()) == []  # nothing half-built left behind
    return message


def test_a_backend_error_is_quoted(tmp_path):
    project = _project(tmp_path / "demo", FLIT + '[project]\nname = "demo-pkg"\ndescription = "d"\n')
    message = _failure(project, tmp_path / "dist")
    assert "ConfigError: version must be specified under [project]" in message
    assert "ERROR Backend subprocess exited" in message


def test_an_unmet_build_requirement_is_named(tmp_path):
    pyproject = FLIT.replace("4.2.0", "9.9") + '[project]\nname = "demo-pkg"\nversion = "1"\ndescription = "d"\n'
    message = _failure(_project(tmp_path / "demo", pyproject), tmp_path / "dist")
    assert "flit_core==9.9" in message and "found: 4.2.0" in message


def test_a_malformed_pyproject_is_named(tmp_path):
    message = _failure(_project(tmp_path / "demo", "[project\n"), tmp_path / "dist")
    assert "Failed to parse" in message and "line 1" in message


def test_a_project_without_pyproject(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HpsforgeError, match="no pyproject.toml"):
        client_wheel.build(tmp_path / "empty", tmp_path / "dist", EPOCH)


def test_an_interpreter_that_cannot_run_is_an_hpsforge_error(tmp_path, monkeypatch):
    """The build runs with this very interpreter (sys.executable), never another `python` on PATH."""
    monkeypatch.setattr(client_wheel.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(HpsforgeError, match=r"building the wheel of .*no-python does not exist"):
        client_wheel.build(CLIENT, tmp_path / "dist", EPOCH)
