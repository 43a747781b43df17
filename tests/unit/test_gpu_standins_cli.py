"""`python -m tests.support.gpu_standins DIR`: the stand-ins a user builds `images -- gpu-cu118` from by hand."""

import os
import subprocess
import sys
from pathlib import Path

from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import blobs


def _run(*args: str):
    return subprocess.run(
        [sys.executable, "-m", "tests.support.gpu_standins", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_it_writes_the_stand_ins_and_prints_the_variables_that_select_them(tmp_path):
    result = _run(str(tmp_path / "standins"))
    assert result.returncode == 0, result.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert set(exports) == {"HPSFORGE_BLOB_MANIFEST", "HPSFORGE_BLOBS_DIR"}
    manifest = blobs.load_manifest(Path(exports["HPSFORGE_BLOB_MANIFEST"]))
    declared = [manifest.get(name) for name in ("cudnn-8.9.7.29-cuda11", "tensorrt-8.6.1.6-cuda11.8")]
    assert all(blob.standin for blob in declared)
    assert all((Path(exports["HPSFORGE_BLOBS_DIR"]) / blob.file).is_file() for blob in declared)


def test_a_folder_with_files_in_it_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = _run(str(tmp_path))
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert os.listdir(tmp_path) == ["keep.txt"]
