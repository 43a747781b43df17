"""dockerfiles/gpu/install-gpu-libraries, run on the host against small archives and wheel listings:
only the declared libraries (and the links leading to them) leave an archive; a library an archive
or a wheel lacks stops it, naming the library and the file it should have come from."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.support import scripts

SCRIPT = Path(__file__).resolve().parents[2] / "dockerfiles" / "gpu" / "install-gpu-libraries"
TOP = "cudnn-linux-x86_64-8.9.7.29_cuda11-archive"
FILE = f"{TOP}.tar.xz"


install = scripts.load(SCRIPT, "install_gpu_libraries")


def _archive(directory: Path, *, drop: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> Path:
    """A cuDNN-shaped tar.xz: lib/ with .so chains, a static archive, headers; `drop` leaves names out."""
    entries: dict[str, str | bytes] = {
        "lib/libcudnn.so.8.9.7": b"\x7fELF cudnn",
        "lib/libcudnn.so.8": "->libcudnn.so.8.9.7",
        "lib/libcudnn.so": "->libcudnn.so.8",
        "lib/libcudnn_ops_infer.so.8.9.7": b"\x7fELF ops",
        "lib/libcudnn_ops_infer.so.8": "->libcudnn_ops_infer.so.8.9.7",
        "lib/libcudnn_ops_infer.so": "->libcudnn_ops_infer.so.8",
        "lib/libcudnn_unused.so.8.9.7": b"\x7fELF unused",
        "lib/libcudnn_unused.so.8": "->libcudnn_unused.so.8.9.7",
        "lib/libcudnn_static.a": b"!<arch>\n" + b"x" * 1000,
        "include/cudnn.h": b"/* header */",
        "LICENSE": b"license",
        **(extra or {}),
    }
    path = directory / FILE
    with tarfile.open(path, "w:xz") as archive:
        for name, content in sorted(entries.items()):
            if any(name.endswith("/" + dropped) for dropped in drop):
                continue
            info = tarfile.TarInfo(f"{TOP}/{name}")
            if isinstance(content, str) and content.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                archive.addfile(info)
            else:
                data = content if isinstance(content, bytes) else content.encode()
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _plan(libraries=("libcudnn.so", "libcudnn_ops_infer.so.8")) -> dict:
    return {
        "blob": "cudnn-8.9.7.29-cuda11",
        "file": FILE,
        "component": "cudnn",
        "version": "8.9.7.29",
        "into": "/opt/nvidia/cudnn/lib",
        "standin": True,
        "libraries": list(libraries),
    }


def test_only_the_declared_libraries_and_their_links_are_kept(tmp_path, capsys):
    _archive(tmp_path)
    result = install.extract_archive(_plan(), tmp_path, tmp_path / "root")
    into = tmp_path / "root" / "opt" / "nvidia" / "cudnn" / "lib"
    assert sorted(path.name for path in into.iterdir()) == [
        "libcudnn.so",
        "libcudnn.so.8",
        "libcudnn.so.8.9.7",
        "libcudnn_ops_infer.so.8",
        "libcudnn_ops_infer.so.8.9.7",
    ]  # ops_infer's own dev link is not declared
    assert (into / "libcudnn.so").is_symlink() and (into / "libcudnn.so").resolve() == into / "libcudnn.so.8.9.7"
    assert (into / "libcudnn.so.8.9.7").read_bytes() == b"\x7fELF cudnn"
    assert result["left_out"]["static archives"][0] == 1 and result["left_out"]["headers"][0] == 1
    assert result["left_out"]["unused libraries"][0] == 3  # libcudnn_unused x2, libcudnn_ops_infer.so
    assert not list((tmp_path / "root" / "opt" / "nvidia" / "cudnn").glob(".extract-*"))  # scratch removed
    assert "kept 5 files" in capsys.readouterr().out


@pytest.mark.parametrize(
    "dropped, wanted, expected",
    [
        ("libcudnn_ops_infer.so.8", "libcudnn_ops_infer.so.8", "libcudnn_ops_infer.so.8 is not in"),
        (
            "libcudnn.so.8.9.7",
            "libcudnn.so",
            "libcudnn.so is not in {file} (vendor blob cudnn-8.9.7.29-cuda11): "
            "its link leads to libcudnn.so.8.9.7, which is not there",
        ),
    ],
)
def test_a_library_the_archive_lacks_is_named_with_the_archive(tmp_path, dropped, wanted, expected):
    _archive(tmp_path, drop=(dropped,))
    with pytest.raises(install.PlanError) as caught:
        install.extract_archive(_plan(), tmp_path, tmp_path / "root")
    message = str(caught.value)
    assert expected.format(file=FILE) in message and FILE in message and "cudnn-8.9.7.29-cuda11" in message


def test_every_missing_library_is_reported_at_once(tmp_path):
    _archive(tmp_path, drop=("libcudnn_ops_infer.so.8",))
    with pytest.raises(install.PlanError) as caught:
        install.extract_archive(_plan(("libcudnn_ops_infer.so.8", "libcudnn_adv_train.so.8")), tmp_path, tmp_path / "r")
    assert str(caught.value).count(" is not in ") == 2


def test_a_link_out_of_lib_is_refused(tmp_path):
    _archive(tmp_path, extra={"lib/libcudnn_evil.so.8": "->../../../etc/passwd"})
    with pytest.raises(install.PlanError, match="links outside lib/"):
        install.extract_archive(_plan(), tmp_path, tmp_path / "root")


def test_a_missing_archive_is_named(tmp_path):
    with pytest.raises(install.PlanError, match=f"{FILE} \\(vendor blob cudnn-8.9.7.29-cuda11\\) is not in"):
        install.extract_archive(_plan(), tmp_path, tmp_path / "root")


def _wheel(tmp_path: Path, *names: str) -> list[Path]:
    lib = tmp_path / "site-packages" / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for name in names:
        (lib / name).write_bytes(b"\x7fELF")
    return [lib / name for name in names]


def _library(name: str, project: str = "nvidia-cublas-cu11") -> dict:
    return {
        "name": name,
        "user": "Paddle",
        "kind": "wheel",
        "project": project,
        "provider": f"{project} 11.11.3.6 (wheel)",
    }


def test_an_unversioned_name_is_linked_to_the_wheels_file(tmp_path):
    files = _wheel(tmp_path, "libcublas.so.11", "libcublasLt.so.11", "libnvblas.so.11")
    path, on_loader_path = install.link_wheel_library(_library("libcublas.so"), lambda project: files)
    assert path.name == "libcublas.so" and path.is_symlink() and path.readlink() == Path("libcublas.so.11")
    assert on_loader_path


def test_a_renamed_bundled_copy_is_loaded_by_path_and_kept_off_the_loader_path(tmp_path):
    files = _wheel(tmp_path, "libcudart-09529672.so.12.6.77", "libcurl-75a2bf80.so.4.7.0")
    path, on_loader_path = install.link_wheel_library(
        _library("libcudart.so.12", "nvidia-pytriton"), lambda project: files
    )
    assert path.name == "libcudart-09529672.so.12.6.77" and not on_loader_path
    assert not (path.parent / "libcudart.so.12").exists()  # nothing added to Triton's private folder


def test_a_library_the_wheel_lacks_is_named_with_the_wheel(tmp_path):
    files = _wheel(tmp_path, "libcublasLt.so.11")
    with pytest.raises(
        install.PlanError,
        match=r"libcublas.so \(opened by Paddle\) is not in nvidia-cublas-cu11 "
        r"11.11.3.6 \(wheel\)",
    ):
        install.link_wheel_library(_library("libcublas.so"), lambda project: files)


def test_install_writes_the_loader_path_and_removes_what_nothing_opens(tmp_path):
    files = _wheel(tmp_path, "libcublas.so.11", "libnvblas.so.11")
    include = tmp_path / "site-packages" / "nvidia" / "cublas" / "include"
    include.mkdir()
    (include / "cublas.h").write_text("/* header */")
    _archive(tmp_path)
    plan = {
        "target": "gpu-cu118",
        "unused": ["nvidia/cublas/lib/libnvblas.so.11"],
        "libraries": [_library("libcublas.so")],
        "archives": [_plan()],
    }
    root = tmp_path / "root"
    folders = install.install(plan, tmp_path, tmp_path / "site-packages", root, files_of=lambda project: files)
    assert folders == sorted([str(files[0].parent), "/opt/nvidia/cudnn/lib"])
    assert (root / install.LD_CONF).read_text().splitlines()[1:] == folders
    assert not files[1].exists() and not include.exists()


def test_an_unused_file_no_wheel_installed_means_the_declaration_is_stale(tmp_path):
    (tmp_path / "site-packages" / "nvidia").mkdir(parents=True)
    with pytest.raises(install.PlanError, match="targets.gpu-cu118.cuda.unused names nvidia/x/lib/libx.so.1"):
        install.remove_unused({"target": "gpu-cu118", "unused": ["nvidia/x/lib/libx.so.1"]}, tmp_path / "site-packages")


def test_main_prints_each_problem_as_an_error_line_and_fails(tmp_path, capsys):
    _archive(tmp_path, drop=("libcudnn_ops_infer.so.8",))
    plan = {"target": "gpu-cu118", "standin": True, "unused": [], "libraries": [], "archives": [_plan()]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code = install.main(
        [
            str(tmp_path / "plan.json"),
            str(tmp_path),
            str(tmp_path / "sp"),
            str(tmp_path / "installed.json"),
            "--root",
            str(tmp_path / "root"),
            "--no-ldconfig",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"install-gpu-libraries: error: libcudnn_ops_infer.so.8 is not in {FILE}" in err
    assert not (tmp_path / "installed.json").exists()
