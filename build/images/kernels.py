"""A GPU target's kernel coverage: which GPU architectures the CUDA libraries in its wheels have
kernels for, read from the libraries' CUDA fatbin containers, without a GPU.

A fatbin container is a 16-byte header (u32 magic 0xBA55ED50, u16 version 1, u16 header size 16,
u64 size of the entries) and entries, each an entry header and its payload:

    offset  0  u16 kind: 1 PTX, 2 ELF cubin (SASS); 8 (cuFFT's LTO-IR) and others are not kernels
    offset  2  u16 0x0101
    offset  4  u32 entry header size (64, or more from CUDA 12.8 on)
    offset  8  u32 payload size, padded to 8 bytes
    offset 28  u32 architecture, major * 10 + minor (86 for sm_86, 120 for sm_120)
    offset 40  u64 flags: 0x2000 compressed, 0x8000 zstd-compressed, 0x100000 arch-specific ("a":
               sm_90a, sm_100a), 0x200000 family-specific ("f": sm_100f, compute_120f)
    offset 56  u64 uncompressed payload size (compressed payloads)

Containers are found wherever they are in a file, 8-byte aligned: cuFFT keeps most of its kernels
in `.ldata` and cuBLASLt and cuDNN some in `.cask_resource`, where `cuobjdump` (which reads only
`.nv_fatbin`) does not look. Each candidate is validated strictly (versions, sizes, every entry
inside the container, the last one ending exactly at its end), so random bytes that happen to hold
the magic are not read as kernels.

Which code runs on a GPU of compute capability M.m (CUDA's compatibility rules):
a cubin for sm_Mk with k <= m (same major), sm_Mkf too (its family), an arch-specific sm_Mma only
on exactly M.m; PTX for compute_XY on any GPU with M*10+m >= XY (the driver compiles it), a
family PTX compute_Mkf on the same major only, an arch-specific compute_Mma on M.m only. (A family
is taken as one major: CUDA 12.9 makes sm_101, Thor, a family of its own, which no promise names.)

What counts as a library's kernels: the code of an architecture counts when it holds at least a
hundredth of the code bytes (uncompressed) of the library's largest architecture. Counting
containers instead (an architecture in at least half of them) fails on the real libraries, which
build one container per kernel and architecture: cuBLASLt has sm_80 cubins in 477 of its 3,484
containers and cuFFT sm_75 in 290 of 24,454. The byte share still drops strays: the one empty
sm_52 cubin in libcufft, the 147-byte compute_52 PTX in libcublasLt. A library whose code is all
below `EMPTY_LIBRARY_BYTES` (empty modules only, like libcufftw's one sm_52 cubin) has no kernels,
like a library with no container at all (libcudart, libnvrtc): neither takes part in the check.
"""

from __future__ import annotations

import mmap
import re
import shutil
import struct
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from hpsforge.core.config import Model
from hpsforge.core.errors import KernelCoverageError
from hpsforge.core.files import atomic_write_text
from hpsforge.core.settings import settings
from hpsforge.inputs.store import cache_root, scratch_dir
from hpsforge.inputs.wheelhouse import WheelhouseManifest

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX = 1
KIND_CUBIN = 2
ENTRY_VERSION = 0x0101
FLAG_COMPRESSED = 0x2000
FLAG_ZSTD = 0x8000
FLAG_ARCH_SPECIFIC = 0x100000  # "a": runs on exactly that SM
FLAG_FAMILY_SPECIFIC = 0x200000  # "f": runs on that SM and the later ones of its family

# A code (one architecture, SASS or PTX) below this share of the library's largest one is a stray.
SIGNIFICANT_SHARE = 0.01
# A library whose code is smaller than this holds only empty modules (an empty cubin is 0.9-2 KB).
EMPTY_LIBRARY_BYTES = 16 * 1024

_HEADER = struct.Struct("<IHHQ")
_ENTRY = struct.Struct("<HHII")
_MAGIC_BYTES = struct.pack("<I", FATBIN_MAGIC)
_MAX_ENTRY_HEADER = 1024
_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9]+)*$")
_CODE = re.compile(r"^(sm|compute)_([1-9][0-9]{1,2})([af]?)$")
_COPY_CHUNK = 1 << 20

CodeName = Annotated[str, StringConstraints(pattern=_CODE.pattern)]
Architecture = Annotated[str, StringConstraints(pattern=r"^sm_[1-9][0-9]{1,2}$")]


def code_name(kind: int, arch: int, flags: int) -> str:
    """sm_86, sm_90a, sm_100f (cubins); compute_90, compute_120f (PTX)."""
    variant = "a" if flags & FLAG_ARCH_SPECIFIC else "f" if flags & FLAG_FAMILY_SPECIFIC else ""
    return f"{'sm' if kind == KIND_CUBIN else 'compute'}_{arch}{variant}"


def _parse(code: str) -> tuple[bool, int, str]:
    """(is PTX, architecture number, variant) of a code name."""
    match = _CODE.match(code)
    if match is None:
        raise ValueError(f"not a CUDA code name: {code!r}")
    return match[1] == "compute", int(match[2]), match[3]


def sort_key(code: str) -> tuple[int, int, int]:
    """Cubins before PTX, by architecture, plain before "f" before "a"."""
    ptx, number, variant = _parse(code)
    return int(ptx), number, "fa".find(variant) + 1


def runs_on(code: str, architecture: str) -> bool:
    """Whether a cubin or PTX of this code name runs on a GPU of that architecture (sm_XY)."""
    ptx, number, variant = _parse(code)
    _, target, _ = _parse(architecture)
    if variant == "a":
        return number == target
    if ptx and not variant:
        return number <= target  # the driver compiles PTX for any later GPU
    return number // 10 == target // 10 and number <= target  # SASS and "f": the same major


def short(code: str) -> str:
    """A code as a table cell: sm_86 stays, compute_90 becomes ptx90."""
    return code.replace("compute_", "ptx")


class Code(Model):
    """One architecture's code in a library (its cubins, or its PTX)."""

    containers: int = Field(ge=0, description="How many fatbin containers have it.")
    bytes: int = Field(ge=0, description="Its size, uncompressed, over all containers.")


class LibraryKernels(Model):
    """The device code of one shared library, read from its fatbin containers."""

    wheel: str = Field(description="The wheel's file name ('' for a file not from a wheel).")
    member: str = Field(description="The library's path in the wheel (or its file name).")
    size: int = Field(ge=0, description="The library's size in bytes.")
    containers: int = Field(ge=0, description="How many fatbin containers it holds.")
    code: dict[CodeName, Code] = Field(description="Its cubins and PTX by code name: sm_86, sm_90a, compute_90.")
    other_entries: int = Field(0, ge=0, description="Entries of other kinds (cuFFT's LTO-IR): nothing a GPU runs.")

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name

    @property
    def key(self) -> str:
        """Which library this is, among every wheel's."""
        return f"{self.wheel}:{self.member}" if self.wheel else self.member

    def provider(self) -> str:
        """The wheel's project and version ("nvidia-cufft-cu12 11.4.1.4"), else its file name."""
        try:
            project, version, _build, _tags = parse_wheel_filename(self.wheel)
        except InvalidWheelFilename:
            return self.wheel or "no wheel"
        return f"{project} {version}"

    def kernels(self) -> list[str]:
        """The codes that are the library's kernels (sorted); none for a library of empty modules."""
        if sum(code.bytes for code in self.code.values()) < EMPTY_LIBRARY_BYTES:
            return []
        largest = max(code.bytes for code in self.code.values())
        return sorted(
            (name for name, code in self.code.items() if code.bytes >= largest * SIGNIFICANT_SHARE), key=sort_key
        )

    def strays(self) -> list[str]:
        """The codes found that do not count as kernels (stray or empty modules)."""
        kept = set(self.kernels())
        return sorted((name for name in self.code if name not in kept), key=sort_key)

    def has_kernels(self) -> bool:
        return bool(self.kernels())

    def covering(self, architecture: str) -> str | None:
        """The code that runs this library's kernels on that architecture: the best cubin (the highest
        one, the most specific), else the highest PTX; None when nothing does."""
        fitting = [code for code in self.kernels() if runs_on(code, architecture)]
        sass = [code for code in fitting if code.startswith("sm_")]
        return max(sass or fitting, key=sort_key, default=None)

    def summary(self) -> str:
        """What it has: "SASS sm_60, sm_90a; PTX compute_90"."""
        kernels = self.kernels()
        sass = [code for code in kernels if code.startswith("sm_")]
        ptx = [code for code in kernels if code.startswith("compute_")]
        return f"SASS {', '.join(sass) or 'none'}; PTX {', '.join(ptx) or 'none'}"


# The table names this many of the libraries without kernels (Triton's wheel bundles dozens).
WITHOUT_SHOWN = 12
# Bump when the reader reads differently: remembered scans of an older reader are then not used.
READER_VERSION = 1
_LIBRARIES = TypeAdapter(list[LibraryKernels])


class Coverage(Model):
    """A GPU target's promised architectures and the kernels of the libraries in its wheels."""

    target: str = Field(description="The target's name.")
    architectures: list[Architecture] = Field(description="The architectures the target promises (sm_75, ...).")
    libraries: list[LibraryKernels] = Field(description="Every shared library of the target's wheels.")

    def promised(self) -> list[str]:
        return sorted(set(self.architectures), key=sort_key)

    def checked(self) -> list[LibraryKernels]:
        """The libraries with kernels: those the check takes part in."""
        return [library for library in self.libraries if library.has_kernels()]

    def cells(self) -> dict[str, dict[str, str | None]]:
        """Per library with kernels (by key) and promised architecture, the code that covers it."""
        return {library.key: {arch: library.covering(arch) for arch in self.promised()} for library in self.checked()}

    def missing(self) -> list[tuple[LibraryKernels, str]]:
        """Each library with kernels and each promised architecture it has none for."""
        return [(lib, arch) for lib in self.checked() for arch in self.promised() if lib.covering(arch) is None]

    def proven(self) -> list[str]:
        """The promised architectures every library with kernels covers (none when none has kernels)."""
        checked = self.checked()
        if not checked:
            return []
        return [arch for arch in self.promised() if all(lib.covering(arch) is not None for lib in checked)]


def _entries(data: mmap.mmap, position: int) -> list[tuple[int, int, int, int]] | None:
    """The (kind, arch, flags, code bytes) of the container at `position`; None if that is no container."""
    size = len(data)
    if position % 8 or position + _HEADER.size > size:
        return None
    _magic, version, header_size, fat_size = _HEADER.unpack_from(data, position)
    end = position + header_size + fat_size
    if version != 1 or header_size != _HEADER.size or fat_size < 64 or fat_size % 8 or end > size:
        return None
    entries = []
    entry = position + header_size
    while entry < end:
        if entry + 64 > end:
            return None
        kind, entry_version, entry_header, padded = _ENTRY.unpack_from(data, entry)
        next_entry = entry + entry_header + padded
        if (
            entry_version != ENTRY_VERSION
            or kind == 0
            or kind & (kind - 1)
            or kind > 0x80
            or not 64 <= entry_header <= _MAX_ENTRY_HEADER
            or entry_header % 8
            or padded % 8
            or next_entry > end
        ):
            return None
        (arch,) = struct.unpack_from("<I", data, entry + 28)
        (flags,) = struct.unpack_from("<Q", data, entry + 40)
        if not 10 <= arch <= 999:
            return None
        code_bytes = padded
        if flags & (FLAG_COMPRESSED | FLAG_ZSTD):
            (uncompressed,) = struct.unpack_from("<Q", data, entry + 56)
            code_bytes = uncompressed or padded
        entries.append((kind, arch, flags, code_bytes))
        entry = next_entry
    return entries


def _containers(data: mmap.mmap) -> Iterator[list[tuple[int, int, int, int]]]:
    """Every fatbin container in the file, wherever it is."""
    position = data.find(_MAGIC_BYTES)
    while position >= 0:
        entries = _entries(data, position)
        if entries is None:
            position = data.find(_MAGIC_BYTES, position + 1)
            continue
        yield entries
        _magic, _version, header_size, fat_size = _HEADER.unpack_from(data, position)
        position = data.find(_MAGIC_BYTES, position + header_size + fat_size)


def read_fatbins(path: Path, *, wheel: str = "", member: str | None = None) -> LibraryKernels:
    """The cubins and PTX in every fatbin container of a file (memory-mapped: 700 MB in a second)."""
    size = path.stat().st_size
    containers = 0
    other = 0
    found: dict[str, list[int]] = {}
    if size:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for entries in _containers(data):
                containers += 1
                seen: set[str] = set()
                for kind, arch, flags, code_bytes in entries:
                    if kind not in (KIND_PTX, KIND_CUBIN):
                        other += 1
                        continue
                    name = code_name(kind, arch, flags)
                    counts = found.setdefault(name, [0, 0])
                    counts[1] += code_bytes
                    if name not in seen:
                        seen.add(name)
                        counts[0] += 1
    return LibraryKernels(
        wheel=wheel,
        member=member if member is not None else path.name,
        size=size,
        containers=containers,
        code={
            name: Code(containers=n, bytes=b) for name, (n, b) in sorted(found.items(), key=lambda i: sort_key(i[0]))
        },
        other_entries=other,
    )


def scan_wheel(wheel: Path, scratch: Path) -> list[LibraryKernels]:
    """Every shared library (`*.so`, `*.so.N`) of a wheel, each extracted alone into a temporary
    folder under `scratch`, read, and deleted."""
    started = time.monotonic()
    scratch.mkdir(parents=True, exist_ok=True)
    found = []
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory(prefix="hpsforge-kernels-", dir=scratch) as tmp:
        for info in sorted(archive.infolist(), key=lambda info: info.filename):
            if info.is_dir() or not _SHARED_LIBRARY.search(info.filename):
                continue
            copy = Path(tmp) / "library.so"
            with archive.open(info) as source, copy.open("wb") as target:
                shutil.copyfileobj(source, target, _COPY_CHUNK)
            try:
                found.append(read_fatbins(copy, wheel=wheel.name, member=info.filename))
            finally:
                copy.unlink()
    with_kernels = sum(library.has_kernels() for library in found)
    elapsed = time.monotonic() - started
    if with_kernels or elapsed >= 1:  # the CUDA wheels and the slow ones, not every pure-Python wheel
        print(
            f"hpsforge: kernels: {wheel.name}: {len(found)} libraries, {with_kernels} with kernels ({elapsed:.1f} s)",
            flush=True,
        )
    return found


def wheel_kernels(wheel: Path, sha256: str, scratch: Path) -> list[LibraryKernels]:
    """`scan_wheel`, remembered by the wheel's sha256: a wheel's kernels never change, and scanning
    the CUDA wheels takes half a minute. (The reader's version is part of the name: a changed reader
    reads again.)"""
    remembered = cache_root() / "kernels" / f"v{READER_VERSION}-{sha256}.json"
    try:
        return _LIBRARIES.validate_json(remembered.read_bytes())
    except (FileNotFoundError, ValidationError):
        pass  # absent or damaged: read the wheel again
    found = scan_wheel(wheel, scratch)
    atomic_write_text(remembered, _LIBRARIES.dump_json(found).decode())
    return found


def prove(target: str, architectures: list[str], wheelhouse: WheelhouseManifest, folder: Path) -> Coverage:
    """The coverage of a target's wheelhouse (its wheels in `folder`), printed as a table; raises
    KernelCoverageError, before anything is built, when a promised architecture is not covered."""
    scratch = scratch_dir()
    libraries = [
        library
        for wheel in sorted(wheelhouse.wheels, key=lambda wheel: wheel.filename)
        for library in wheel_kernels(folder / wheel.filename, wheel.sha256, scratch)
    ]
    found = Coverage(target=target, architectures=architectures, libraries=libraries)
    print(f"hpsforge: {target}: GPU kernels of its CUDA libraries, per promised architecture\n{table(found)}", end="")
    check(found)
    return found


def check(coverage: Coverage) -> None:
    """Stop unless every library with kernels covers every promised architecture."""
    promised = coverage.promised()
    if not promised:
        return
    field = f"targets.{coverage.target}.cuda.architectures"
    config_file = settings().config_file.name
    checked = coverage.checked()
    if not checked:
        raise KernelCoverageError(
            f"target {coverage.target}: no library of its wheels has CUDA kernels, so nothing proves "
            f"{', '.join(promised)}",
            hint=f"check the target's wheels (a CUDA build of each), or drop {field} from {config_file}",
        )
    missing = coverage.missing()
    if not missing:
        return
    lines = []
    for library in checked:
        archs = [arch for lib, arch in missing if lib is library]
        if archs:
            lines.append(
                f"  {library.name} ({library.provider()}, {library.wheel or 'no wheel'}, {library.member}) "
                f"has no kernels for {', '.join(archs)}: it has {library.summary()}"
                + (f" (ignored as strays: {', '.join(library.strays())})" if library.strays() else "")
            )
    uncovered = sorted({arch for _lib, arch in missing}, key=sort_key)
    projects = sorted({lib.provider().partition(" ")[0] for lib, _arch in missing})
    raise KernelCoverageError(
        f"target {coverage.target}: its CUDA libraries have no kernels for {', '.join(uncovered)}, "
        f"which {field} promises:\n" + "\n".join(lines),
        hint=f"drop {', '.join(uncovered)} from {field} in {config_file}, "
        f"or pin a version of {', '.join(projects)} whose wheel has kernels for it",
    )


def table(coverage: Coverage) -> str:
    """Libraries with kernels against the promised architectures: what covers each (sm_86, sm_90a,
    ptx90; "—" nothing), then every code found ("(ignored: ...)" the strays)."""
    promised = coverage.promised()
    header = ["library", "wheel", *promised, "kernels found"]
    rows = [header]
    for library in coverage.checked():
        found = ",".join(short(code) for code in library.kernels())
        if library.strays():
            found += f" (ignored: {','.join(short(code) for code in library.strays())})"
        cells = [short(code) if (code := library.covering(arch)) else "—" for arch in promised]
        rows.append([library.name, library.provider(), *cells, found])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    cuda_wheels = {library.wheel for library in coverage.checked()}
    without = sorted(lib.name for lib in coverage.libraries if lib.wheel in cuda_wheels and not lib.has_kernels())
    lines.append(f"proven on every library with kernels: {label(coverage) or 'none'}")
    if without:
        shown = ", ".join(without[:WITHOUT_SHOWN]) + (", ..." if len(without) > WITHOUT_SHOWN else "")
        lines.append(f"without kernels ({len(without)}): {shown}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def label(coverage: Coverage) -> str:
    """The promised architectures proven, for an OCI label: "sm_75,sm_80,sm_86"."""
    return ",".join(coverage.proven())
