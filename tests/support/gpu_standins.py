"""STAND-INS for NVIDIA's cuDNN and TensorRT tarballs, which sit behind NVIDIA's login.

The test suite cannot download them, so it builds the gpu-cu118 images from generated archives with the
same file names and the same layout (DESIGN.md, "Archive layouts"): `<top>/lib/` with every shared
library of the real archive under its real names, the `.so -> .so.8 -> .so.8.9.7` symlink chains,
static archives, headers, docs and samples (which the image build must leave out). Each shared
object is compiled on the spot with gcc and carries the real soname; between them they have the
DT_NEEDED entries that exercise the loader path: cuDNN's sub-libraries need libcudnn_ops_infer
(and libcudnn_cnn_infer needs the real cuBLASLt wheel's libcublasLt.so.11), TensorRT's plugin
library needs libnvinfer. They answer the version queries hps-gpu-check asks (cudnnGetVersion,
getInferLibVersion) with the real release's numbers, and every one exports `hpsforge_standin`,
so hps-gpu-check marks it STAND-IN. Nothing else in them works: no GPU code at all.

They are declared in a test-only blob manifest (`standin = true`) that HPSFORGE_BLOB_MANIFEST
points at; images built from it are tagged `-standin`, labelled so, and never recorded.
The bytes are reproducible (fixed times, owners and order; deterministic gcc, xz and gzip), so
a warm machine rebuilds nothing.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hpsforge.core.config import ProjectConfig
from hpsforge.core.files import sha256_file
from hpsforge.core.settings import PROJECT_ROOT
from hpsforge.inputs import blobs

MTIME = 1701388800  # 2023-12-01, about when NVIDIA published these releases
MADE_BY = "tests/support/gpu_standins.py"

# What else the real archives' lib/ folders hold (the image must leave these out), and which
# libraries need which (DT_NEEDED) among them.
OTHER_LIBRARIES = {
    "cudnn": [],
    "tensorrt": [
        "libnvinfer_lean.so",
        "libnvinfer_dispatch.so",
        "libnvinfer_vc_plugin.so",
        "libnvonnxparser.so",
        "libnvparsers.so",
    ],
}
STATIC_ARCHIVES = {
    "cudnn": ["libcudnn_adv_infer_static.a", "libcudnn_cnn_infer_static.a", "libcudnn_ops_infer_static.a"],
    "tensorrt": ["libnvinfer_static.a", "libnvinfer_plugin_static.a", "libnvonnxparser_static.a"],
}
OTHER_FILES = {
    "cudnn": ["LICENSE", "include/cudnn.h", "include/cudnn_version.h", "include/cudnn_ops_infer.h"],
    "tensorrt": [
        "include/NvInfer.h",
        "include/NvInferPlugin.h",
        "doc/Acknowledgements.txt",
        "samples/sampleOnnxMNIST/sampleOnnxMNIST.cpp",
        "data/mnist/README.md",
        "bin/trtexec",
        "python/tensorrt-8.6.1-cp311-none-linux_x86_64.whl",
        "targets/x86_64-linux-gnu/lib/stubs/README",
    ],
}
NEEDS = {
    "libcudnn_ops_train": ["libcudnn_ops_infer.so.8"],
    "libcudnn_cnn_infer": ["libcudnn_ops_infer.so.8", "libcublasLt.so.11"],
    "libcudnn_cnn_train": ["libcudnn_ops_infer.so.8", "libcudnn_ops_train.so.8", "libcudnn_cnn_infer.so.8"],
    "libcudnn_adv_infer": ["libcudnn_ops_infer.so.8", "libcudnn_cnn_infer.so.8"],
    "libcudnn_adv_train": ["libcudnn_ops_infer.so.8", "libcudnn_ops_train.so.8", "libcudnn_adv_infer.so.8"],
    "libnvinfer_plugin": ["libnvinfer.so.8"],
}
# Libraries the stand-ins need that come from elsewhere (a wheel): linked against a throwaway stub.
EXTERNAL = {"libcublasLt.so.11"}


def _version_function(stem: str, version: str) -> str:
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    if stem == "libcudnn":
        return f"unsigned long cudnnGetVersion(void) {{ return {major * 1000 + minor * 100 + patch}; }}\n"
    if stem == "libnvinfer":
        return f"int getInferLibVersion(void) {{ return {major * 1000 + minor * 100 + patch}; }}\n"
    return ""


@dataclass(frozen=True)
class StandinLibrary:
    stem: str  # libcudnn_ops_infer
    file: str  # libcudnn_ops_infer.so.8.9.7 (the real file)
    soname: str  # libcudnn_ops_infer.so.8
    links: tuple[str, ...]  # (libcudnn_ops_infer.so.8, libcudnn_ops_infer.so): the symlink chain


def _library(name: str, version: str) -> StandinLibrary:
    """The files of one library as the real archive has them, from the name it is opened by."""
    stem, _, suffix = name.partition(".so")
    release = ".".join(version.split(".")[:3])
    major = version.split(".")[0]
    if suffix.count(".") >= 3:  # fully versioned (libnvinfer_builder_resource.so.8.6.1): one file, no links
        return StandinLibrary(stem, name, name, ())
    return StandinLibrary(stem, f"{stem}.so.{release}", f"{stem}.so.{major}", (f"{stem}.so.{major}", f"{stem}.so"))


def _compile(
    library: StandinLibrary, version: str, lib_dir: Path, stubs: Path, work: Path, *, unloadable: bool
) -> None:
    source = work / "standin.c"  # one fixed name: it is recorded in the symbol table
    source.write_text(
        f'const char hpsforge_standin[] = "STAND-IN for {library.file}, made by {MADE_BY}: not NVIDIA\'s library";\n'
        + _version_function(library.stem, version)
    )
    needed = NEEDS.get(library.stem, [])
    if unloadable:
        needed = [*needed, "libhpsforge-not-there.so.1"]
    command = [
        "gcc",
        "-shared",
        "-fPIC",
        "-O0",
        "-o",
        str(lib_dir / library.file),
        f"-Wl,-soname,{library.soname}",
        source.name,
        "-Wl,--no-as-needed",
        f"-L{lib_dir}",
        f"-L{stubs}",
    ]
    for name in needed:
        if name in EXTERNAL or name.startswith("libhpsforge-"):
            _stub(stubs, name, work)
        command.append(f"-l:{name}")
    subprocess.run(command, check=True, cwd=work, capture_output=True)


def _stub(stubs: Path, soname: str, work: Path) -> None:
    """A link-time stand-in for a library another input provides: only its soname matters."""
    if not (stubs / soname).exists():
        (work / "empty.c").write_text("")
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}", "empty.c"],
            check=True,
            cwd=work,
            capture_output=True,
        )


def _build_order(libraries: set[StandinLibrary]) -> list[StandinLibrary]:
    """What others link against first (ops_infer before cnn_infer, libnvinfer before its plugin)."""
    ordered, done = [], set()
    pending = sorted(libraries, key=lambda library: library.stem)
    while pending:
        ready = [lib for lib in pending if all(name in done or name in EXTERNAL for name in NEEDS.get(lib.stem, []))]
        if not ready:
            raise ValueError(f"stand-ins need each other in a circle: {[lib.stem for lib in pending]}")
        for library in ready:
            ordered.append(library)
            done.add(library.soname)
            pending.remove(library)
    return ordered


def _tar(folder: Path, top: str, destination: Path) -> None:
    """A reproducible tarball of `folder` as `top/`: sorted, fixed times and owners."""

    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
        if not info.issym():
            executable = info.isdir() or re.search(r"\.so(\.|$)", info.name) or info.name.endswith("/trtexec")
            info.mode = 0o755 if executable else 0o644
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        paths = [folder, *sorted(folder.rglob("*"), key=lambda path: path.relative_to(folder).as_posix())]
        for path in paths:
            name = top if path == folder else f"{top}/{path.relative_to(folder).as_posix()}"
            archive.add(path, arcname=name, recursive=False, filter=normalised)
    data = buffer.getvalue()
    if destination.name.endswith(".tar.xz"):
        destination.write_bytes(lzma.compress(data, preset=6))
    else:
        with open(destination, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
            zipped.write(data)


def _top_folder(file: str) -> str:
    """The real archives' top folder: the file name without .tar.xz (cuDNN), TensorRT-<version>."""
    if file.startswith("TensorRT-"):
        return "-".join(file.split(".Linux")[0].split("-")[:2])
    return file.removesuffix(".tar.xz").removesuffix(".tar.gz")


@dataclass(frozen=True)
class Standins:
    """Generated archives and the manifest that declares them."""

    manifest: Path
    directory: Path

    def environment(self) -> dict[str, str]:
        return {"HPSFORGE_BLOB_MANIFEST": str(self.manifest), "HPSFORGE_BLOBS_DIR": str(self.directory)}

    @contextmanager
    def active(self):
        """HPSFORGE_BLOB_MANIFEST and HPSFORGE_BLOBS_DIR point at the stand-ins, for the block only."""
        saved = {key: os.environ.get(key) for key in self.environment()}
        os.environ.update(self.environment())
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def make(
    destination: Path,
    config: ProjectConfig,
    target: str = "gpu-cu118",
    *,
    omit: frozenset[str] = frozenset(),
    unloadable: frozenset[str] = frozenset(),
) -> Standins:
    """Stand-in archives for every blob of `target`, and their manifest, under `destination`.

    omit: declared library names left out of their archive (a broken tarball);
    unloadable: declared library names whose file needs a library nobody provides.
    """
    if shutil.which("gcc") is None:
        raise RuntimeError(
            "the gpu-cu118 stand-ins are shared objects compiled on the spot: install gcc "
            "(apt-get install gcc) to build and test the gpu-cu118 images"
        )
    real = blobs.load_manifest(PROJECT_ROOT / "vendor_blobs" / "manifest.toml")  # the project's manifest
    cuda = config.target(target).cuda
    directory = destination / "files"
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory(prefix="standins-") as tmp:
        work = Path(tmp)
        stubs = work / "stubs"
        stubs.mkdir()
        for name in config.target(target).blobs:
            blob = real.get(name)
            declared = [library.name for library in cuda.libraries if library.source == name]
            wanted = [*declared, *OTHER_LIBRARIES.get(blob.component, [])]
            top = _top_folder(blob.file)
            tree = work / blob.component
            lib_dir = tree / "lib"
            lib_dir.mkdir(parents=True)
            for library in _build_order({_library(item, blob.version) for item in wanted}):
                if any(item in (library.file, *library.links) for item in omit):
                    continue
                _compile(
                    library,
                    blob.version,
                    lib_dir,
                    stubs,
                    work,
                    unloadable=any(item in (library.file, *library.links) for item in unloadable),
                )
                target_name = library.file
                for link in library.links:
                    (lib_dir / link).symlink_to(target_name)
                    target_name = link
            for static in STATIC_ARCHIVES.get(blob.component, []):
                (lib_dir / static).write_bytes(b"!<arch>\n")  # an empty ar archive
            for relative in OTHER_FILES.get(blob.component, []):
                (tree / relative).parent.mkdir(parents=True, exist_ok=True)
                (tree / relative).write_text(f"STAND-IN for {top}/{relative}, made by {MADE_BY}\n")
            archive = directory / blob.file
            _tar(tree, top, archive)
            entries.append(
                "[[blobs]]\n"
                f'name = "{blob.name}"\nfile = "{blob.file}"\n'
                f'size = {archive.stat().st_size}\nsha256 = "{sha256_file(archive)}"\n'
                f'url = "file://{archive}"\n'
                'license = "none: a generated stand-in, not NVIDIA software"\n'
                f'targets = ["{target}"]\ncomponent = "{blob.component}"\nversion = "{blob.version}"\n'
                f"standin = true\n"
                f'note = "STAND-IN for NVIDIA\'s {blob.file}, generated by {MADE_BY} (tests only)"\n'
            )
    manifest = destination / "standin-manifest.toml"
    manifest.write_text("# STAND-INS generated by the test suite: never a release input.\n\n" + "\n".join(entries))
    return Standins(manifest, directory)


def main(argv: list[str]) -> int:
    """`python -m tests.support.gpu_standins DIR`: write the stand-ins under DIR and print the two
    variables that point a build at them (eval its output, then `./noxw -s images -- gpu-cu118`)."""
    import argparse

    from hpsforge.core.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m tests.support.gpu_standins",
        description="generate STAND-IN cuDNN/TensorRT archives (tests only)",
    )
    parser.add_argument("destination", type=Path, help="an empty or missing folder")
    destination = parser.parse_args(argv).destination.resolve()
    if destination.exists() and any(destination.iterdir()):
        parser.error(f"{destination} is not empty: give a new folder")
    standins = make(destination, load_config())
    for key, value in standins.environment().items():
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
