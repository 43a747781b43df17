"""hpsforge.assemble: reproducible bundle archives, the client/ and server/ folders; `assemble` CLI errors."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from hpsforge import cli
from hpsforge.bundle import assemble
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.pipelines import Pipeline, load_pipelines
from hpsforge.inputs.store import ContentStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EPOCH = 1767225600


# --- write_archive ---------------------------------------------------------------------------


def _bundle(root: Path) -> Path:
    folder = root / "Demo_sdk"
    (folder / "server" / "model_repo" / "m" / "1").mkdir(parents=True)
    (folder / "client").mkdir()
    (folder / "empty").mkdir()
    (folder / "README.md").write_text("# Demo\n", encoding="utf-8")
    (folder / "server" / "pipeline.toml").write_text('description = "d"\n', encoding="utf-8")
    (folder / "server" / "model_repo" / "m" / "config.pbtxt").write_text('name: "m"\n', encoding="utf-8")
    (folder / "server" / "model_repo" / "m" / "1" / "model.py").write_text("# 模型\n", encoding="utf-8")
    (folder / "client" / "client.py").write_text("print()\n", encoding="utf-8")
    (folder / "client" / "b.txt").write_bytes(b"\0" * 1000)
    (folder / "client" / "a.txt").write_bytes(b"a")
    script = folder / "server" / "server.sh"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    return folder


def _members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as bundle:
        return bundle.getmembers()


def test_archive_is_byte_identical_across_calls(tmp_path):
    folder = _bundle(tmp_path / "src")
    first, second = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    assemble.write_archive(folder, first, EPOCH)
    assemble.write_archive(folder, second, EPOCH)
    assert first.read_bytes() == second.read_bytes()


def test_archive_ignores_times_modes_and_location(tmp_path):
    first = tmp_path / "one.tar.gz"
    assemble.write_archive(_bundle(tmp_path / "src"), first, EPOCH)

    folder = _bundle(tmp_path / "elsewhere" / "deeper")
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "server.sh":
            path.chmod(0o600)
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (folder / "server" / "server.sh").chmod(0o700)
    os.utime(folder, (2_000_000_000, 2_000_000_000))
    second = tmp_path / "two.tar.gz"
    assemble.write_archive(folder, second, EPOCH)
    assert first.read_bytes() == second.read_bytes()


def test_archive_changes_with_content_and_epoch(tmp_path):
    folder = _bundle(tmp_path / "src")
    assemble.write_archive(folder, tmp_path / "one.tar.gz", EPOCH)
    assemble.write_archive(folder, tmp_path / "epoch.tar.gz", EPOCH + 1)
    (folder / "client" / "a.txt").write_bytes(b"b")
    assemble.write_archive(folder, tmp_path / "content.tar.gz", EPOCH)
    one = (tmp_path / "one.tar.gz").read_bytes()
    assert (tmp_path / "epoch.tar.gz").read_bytes() != one
    assert (tmp_path / "content.tar.gz").read_bytes() != one


def test_archive_entries_are_sorted_and_normalised(tmp_path):
    folder = _bundle(tmp_path / "src")
    archive = tmp_path / "out" / "Demo_sdk.tar.gz"
    assemble.write_archive(folder, archive, EPOCH)
    members = _members(archive)
    names = [member.name for member in members]
    assert names == [
        "Demo_sdk",
        "Demo_sdk/README.md",
        "Demo_sdk/client",
        "Demo_sdk/client/a.txt",
        "Demo_sdk/client/b.txt",
        "Demo_sdk/client/client.py",
        "Demo_sdk/empty",
        "Demo_sdk/server",
        "Demo_sdk/server/model_repo",
        "Demo_sdk/server/model_repo/m",
        "Demo_sdk/server/model_repo/m/1",
        "Demo_sdk/server/model_repo/m/1/model.py",
        "Demo_sdk/server/model_repo/m/config.pbtxt",
        "Demo_sdk/server/pipeline.toml",
        "Demo_sdk/server/server.sh",
    ]
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == EPOCH
        if member.isdir():
            assert member.mode == 0o755, member.name
        elif member.name.endswith("server.sh"):
            assert member.mode == 0o755
        else:
            assert member.mode == 0o644, member.name
    assert sum(member.isfile() for member in members) == 8


def test_archive_contents_round_trip(tmp_path):
    folder = _bundle(tmp_path / "src")
    archive = tmp_path / "b.tar.gz"
    assemble.write_archive(folder, archive, EPOCH)
    with tarfile.open(archive, "r:gz") as bundle:
        assert bundle.extractfile("Demo_sdk/server/model_repo/m/1/model.py").read() == "# 模型\n".encode()
        assert bundle.extractfile("Demo_sdk/client/b.txt").read() == b"\0" * 1000


def test_archive_gzip_header_has_no_time_or_name(tmp_path):
    archive = tmp_path / "b.tar.gz"
    assemble.write_archive(_bundle(tmp_path / "src"), archive, EPOCH)
    data = archive.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\0\0\0\0"  # MTIME
    assert not data[3] & 0x08  # FNAME not set
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped, tarfile.open(fileobj=io.BytesIO(unzipped.read())) as tar:
        assert tar.getnames()[0] == "Demo_sdk"


def test_archive_is_replaced_atomically(tmp_path):
    folder = _bundle(tmp_path / "src")
    archive = tmp_path / "out" / "b.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"old")
    assemble.write_archive(folder, archive, EPOCH)
    assert archive.read_bytes()[:2] == b"\x1f\x8b"
    assert [path.name for path in archive.parent.iterdir()] == ["b.tar.gz"]


# --- stage_client ----------------------------------------------------------------------------


@pytest.fixture
def pipelines_dir(tmp_path, monkeypatch) -> Path:
    """A project (HPSFORGE_PROJECT) whose one pipeline, Demo, has a client; the project's own sdk/
    and lock/. Its pipelines/ folder."""
    project = tmp_path / "project"
    directory = project / "pipelines"
    (directory / "Demo" / "client").mkdir(parents=True)
    (directory / "Demo" / "client" / "client.py").write_text("print('demo client')\n", encoding="utf-8")
    for shared in ("sdk", "lock"):
        (project / shared).symlink_to(PROJECT_ROOT / shared)
    monkeypatch.setenv("HPSFORGE_PROJECT", str(project))
    return directory


def test_stage_client(pipelines_dir, tmp_path):
    destination = tmp_path / "bundle" / "client"
    wheel = assemble.stage_client("Demo", destination, EPOCH)
    assert wheel == destination / "hps_client-0.1.0-py3-none-any.whl"
    assert sorted(path.name for path in destination.iterdir()) == [
        "client.py",
        "hps_client-0.1.0-py3-none-any.whl",
        "requirements.txt",
    ]
    assert (destination / "client.py").read_bytes() == (pipelines_dir / "Demo" / "client" / "client.py").read_bytes()
    assert (destination / "requirements.txt").read_bytes() == (
        PROJECT_ROOT / "lock" / "requirements" / "client.txt"
    ).read_bytes()
    with zipfile.ZipFile(wheel) as archive:  # built by flit_core: the README is its description
        metadata = archive.read("hps_client-0.1.0.dist-info/METADATA").decode("utf-8")
    assert "Description-Content-Type: text/markdown" in metadata
    assert (PROJECT_ROOT / "sdk" / "client" / "README.md").read_text(encoding="utf-8").strip() in metadata


def test_stage_client_is_reproducible(pipelines_dir, tmp_path):
    first = assemble.stage_client("Demo", tmp_path / "a" / "client", EPOCH)
    second = assemble.stage_client("Demo", tmp_path / "b" / "client", EPOCH)
    assert first.read_bytes() == second.read_bytes()


def test_stage_client_without_client_py(pipelines_dir, tmp_path):
    (pipelines_dir / "Bare").mkdir()
    with pytest.raises(HpsforgeError) as caught:
        assemble.stage_client("Bare", tmp_path / "bundle" / "client", EPOCH)
    message = str(caught.value)
    assert str(pipelines_dir / "Bare" / "client" / "client.py") in message
    assert "is missing" in message and "command-line client" in message


def test_stage_client_without_the_client_lock(pipelines_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HPSFORGE_LOCK_DIR", str(tmp_path / "no-locks"))
    with pytest.raises(HpsforgeError) as caught:
        assemble.stage_client("Demo", tmp_path / "bundle" / "client", EPOCH)
    assert str(tmp_path / "no-locks" / "requirements" / "client.txt") in str(caught.value)
    assert "nox -s freeze -- client" in str(caught.value)


# --- stage_server (a pipeline without model files: nothing to fetch) ---------------------------


def test_stage_server(pipelines_dir, tmp_path):
    server = pipelines_dir / "Demo" / "server"
    (server / "model_repo" / "demo" / "1").mkdir(parents=True)
    (server / "model_repo" / "demo" / "config.pbtxt").write_text('name: "demo"\nbackend: "python"\n', encoding="utf-8")
    (server / "model_repo" / "demo" / "1" / "model.py").write_text("", encoding="utf-8")
    (server / "lib" / "demo_lib" / "__pycache__").mkdir(parents=True)
    (server / "lib" / "demo_lib" / "__init__.py").write_text("", encoding="utf-8")
    (server / "lib" / "demo_lib" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (pipelines_dir / "Demo" / "pipeline.toml").write_text('description = "demo"\n', encoding="utf-8")
    destination = tmp_path / "bundle" / "server"

    names = assemble.stage_server("Demo", Pipeline(description="demo"), destination, ContentStore(tmp_path / "store"))

    assert names == ["demo"]
    assert (destination / "model_repo" / "demo" / "configs" / "gpu.pbtxt").exists()
    assert (destination / "lib" / "hps_server" / "wire.py").exists()
    assert (destination / "lib" / "demo_lib" / "__init__.py").exists()
    assert not list(destination.rglob("__pycache__")) and not list(destination.rglob("*.pyc"))
    assert (destination / "pipeline.toml").read_text(encoding="utf-8") == 'description = "demo"\n'
    assert (destination / "server.sh").read_bytes() == (PROJECT_ROOT / "sdk" / "server" / "server.sh").read_bytes()
    assert (destination / "server.sh").stat().st_mode & 0o777 == 0o755


# --- assemble (client only: no model files needed) --------------------------------------------


def test_assemble_client_only_twice_gives_the_same_archive(tmp_path):
    name = "lexical_analysis"
    pipeline = load_pipelines()[name]
    output = tmp_path / "output"
    folder = assemble.assemble(name, pipeline, EPOCH, server=False, output_dir=output)
    assert folder == output / f"{name}_sdk"
    first = (output / f"{name}_sdk.tar.gz").read_bytes()
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "hps_client-0.1.0-py3-none-any.whl" in readme and "(server not included)" in readme
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "client"]

    (folder / "stale.txt").write_text("from the previous run", encoding="utf-8")
    assert assemble.assemble(name, pipeline, EPOCH, server=False, output_dir=output) == folder
    assert (output / f"{name}_sdk.tar.gz").read_bytes() == first
    assert not (folder / "stale.txt").exists()  # the previous bundle is replaced, not merged
    assert sorted(path.name for path in output.iterdir()) == [f"{name}_sdk", f"{name}_sdk.tar.gz"]


# --- `nox -s assemble` argument errors (raised before any work) --------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly if run_assemble gets past its argument checks."""

    def forbidden(*args, **kwargs):
        raise AssertionError("run_assemble did work before rejecting its arguments")

    monkeypatch.setattr(cli.assemble, "assemble", forbidden)
    monkeypatch.setattr(cli.lock_kinds, "check", forbidden)


def _assemble_error(argv: list[str]) -> HpsforgeError:
    with pytest.raises(HpsforgeError) as caught:
        cli.run_assemble(argv)
    return caught.value


def test_assemble_needs_names_or_all(no_work):
    error = _assemble_error([])
    assert error.message == "name the pipelines to assemble, or give --all (not both)"
    assert "known pipelines: " in error.hint and "OCR" in error.hint


def test_assemble_names_with_all(no_work):
    error = _assemble_error(["OCR", "--all"])
    assert "not both" in error.message


def test_assemble_unknown_name(no_work):
    error = _assemble_error(["OCR", "Nope"])
    assert "unknown pipeline(s) Nope" in str(error)
    assert "OCR" in str(error).split("known:")[1]


@pytest.mark.parametrize("argv", [["OCR", "--no-server", "--no-client"], ["--all", "--no-client", "--no-server"]])
def test_assemble_no_server_and_no_client(no_work, argv):
    assert _assemble_error(argv).message == "--no-server and --no-client together leave nothing to assemble"


def test_assemble_unknown_option(no_work):
    error = _assemble_error(["--all", "--bogus"])
    assert "unrecognized arguments: --bogus" in str(error)
