"""hpsforge.images.kernels: fatbin containers found anywhere in a file (and random bytes not taken
for one), the "a"/"f" variants, a wheel's libraries, CUDA's compatibility rules, strays, the check,
the table and the label."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpsforge.core.errors import ExitCode, KernelCoverageError
from hpsforge.images import kernels
from hpsforge.images.kernels import Code, Coverage, LibraryKernels

PTX, CUBIN, LTO = 1, 2, 8
A, F = kernels.FLAG_ARCH_SPECIFIC, kernels.FLAG_FAMILY_SPECIFIC
MB = 1_000_000


def _entry(kind: int, arch: int, *, flags: int = 0x11, payload: bytes = b"\x5a" * 20, code: int | None = None) -> bytes:
    """One fatbin entry: a 64-byte header and its payload padded to 8 bytes; `code` makes it a
    compressed entry of that many uncompressed bytes."""
    padded = payload.ljust(-(-len(payload) // 8) * 8, b"\0")
    header = bytearray(64)
    struct.pack_into("<HHII", header, 0, kind, 0x0101, 64, len(padded))
    struct.pack_into("<I", header, 20, len(payload))
    struct.pack_into("<I", header, 28, arch)
    struct.pack_into("<Q", header, 40, flags | (kernels.FLAG_COMPRESSED if code is not None else 0))
    if code is not None:
        struct.pack_into("<Q", header, 56, code)
    return bytes(header) + padded


def _unpadded(arch: int, size: int) -> bytes:
    entry = bytearray(_entry(CUBIN, arch)[:64])
    struct.pack_into("<I", entry, 8, size)
    return bytes(entry) + b"\x5a" * size


def _container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", kernels.FATBIN_MAGIC, 1, 16, len(body)) + body


def _library(**codes: tuple[int, int]) -> dict[str, Code]:
    return {name: Code(containers=n, bytes=b) for name, (n, b) in codes.items()}


def _lib(member: str, wheel: str = "nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl", **codes):
    code = _library(**codes)
    return LibraryKernels(
        wheel=wheel, member=member, size=1, containers=max((c.containers for c in code.values()), default=0), code=code
    )


ORT_WHEEL = "onnxruntime_gpu-1.26.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"


def _ort() -> LibraryKernels:
    """What libonnxruntime_providers_cuda.so of onnxruntime-gpu 1.26.0 holds (measured)."""
    return _lib(
        "onnxruntime/capi/libonnxruntime_providers_cuda.so",
        ORT_WHEEL,
        **dict.fromkeys(("sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90a", "compute_90"), (230, 100 * MB)),
    )


# --- reading containers ---------------------------------------------------------------------------


def test_containers_are_found_anywhere_at_aligned_offsets_and_noise_is_not_read_as_one(tmp_path):
    rng = random.Random(7)
    magic = struct.pack("<I", kernels.FATBIN_MAGIC)
    good = [
        _container(_entry(CUBIN, 80), _entry(CUBIN, 86), _entry(PTX, 90)),
        _container(_entry(CUBIN, 90, flags=0x2011 | A, code=50_000), _entry(CUBIN, 100, flags=F)),
        _container(_entry(CUBIN, 80), _entry(CUBIN, 80), _entry(LTO, 50)),  # sm_80 twice: one container
    ]
    decoys = [
        b"\x11\x22\x33" + good[0],  # a valid container, but not 8-byte aligned (placed at an aligned offset + 3)
        magic + struct.pack("<HHQ", 0, 16, 64) + bytes(64),  # version 0
        magic + struct.pack("<HHQ", 1, 16, 1 << 40),  # larger than the file
        magic + struct.pack("<HHQ", 1, 16, 72) + _entry(CUBIN, 75)[:64] + bytes(8),  # entry runs past the end
        magic + struct.pack("<HHQ", 1, 16, 88 + 32) + _entry(CUBIN, 75) + _entry(CUBIN, 80),  # ends inside an entry
        # payloads not padded to 8 bytes (20 and 28), though the container's size is a multiple of 8
        magic + struct.pack("<HHQ", 1, 16, 176) + _unpadded(75, 20) + _unpadded(80, 28),
        _container(_entry(CUBIN, 5)),  # no architecture is 0.5
        _container(_entry(CUBIN, 75))[:16] + b"\x03\x00" + _container(_entry(CUBIN, 75))[18:],  # kind 3
    ]
    blob = bytearray(b"\x7fELF\x02\x01\x01" + bytes(57))
    for part in [*decoys, *good]:
        blob += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        # random bytes full of magics: each followed by noise, none a container
        for _ in range(20):
            blob += bytes(-len(blob) % 8) + magic + bytes(rng.randrange(256) for _ in range(rng.randrange(12, 90)))
        blob += bytes(-len(blob) % 8) + part
    path = tmp_path / "libfake.so.12"
    path.write_bytes(bytes(blob) + bytes(rng.randrange(256) for _ in range(1000)))

    found = kernels.read_fatbins(path, wheel="x.whl", member="lib/libfake.so.12")
    assert found.containers == 3
    assert found.code == {
        "sm_80": Code(containers=2, bytes=24 * 3),
        "sm_86": Code(containers=1, bytes=24),
        "sm_90a": Code(containers=1, bytes=50_000),
        "sm_100f": Code(containers=1, bytes=24),
        "compute_90": Code(containers=1, bytes=24),
    }
    assert found.other_entries == 1  # cuFFT's LTO-IR kind: counted, not a kernel
    assert (found.wheel, found.member, found.name, found.size) == (
        "x.whl",
        "lib/libfake.so.12",
        "libfake.so.12",
        len(path.read_bytes()),
    )


def test_variants_are_read_from_the_entry_flags():
    assert kernels.code_name(CUBIN, 90, 0x102011) == "sm_90a"  # ORT 1.26.0's Hopper cubins
    assert kernels.code_name(CUBIN, 100, 0x1108011) == "sm_100a"  # cuBLASLt's .cask_resource
    assert kernels.code_name(CUBIN, 120, 0x1208011) == "sm_120f"  # cuBLASLt 12.9, built -arch sm_120f
    assert kernels.code_name(PTX, 120, 0x202011) == "compute_120f"  # cuDNN 9's PTX
    assert kernels.code_name(PTX, 90, 0x2011) == "compute_90"
    assert kernels.code_name(CUBIN, 86, 0x11) == "sm_86"


def test_a_file_without_containers_and_an_empty_file_have_none(tmp_path):
    (tmp_path / "libcudart.so.12").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (tmp_path / "empty.so").write_bytes(b"")
    for name in ("libcudart.so.12", "empty.so"):
        found = kernels.read_fatbins(tmp_path / name)
        assert (found.containers, found.code, found.kernels()) == (0, {}, [])


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_wheel_s_shared_libraries_are_read_one_by_one_and_nothing_is_left(tmp_path, capsys):
    big = _container(_entry(CUBIN, 80, code=2 * MB), _entry(PTX, 80, code=MB))
    wheel = _wheel(
        tmp_path / "nvidia_foo_cu12-12.1.0-py3-none-manylinux_2_27_x86_64.whl",
        {
            "nvidia/foo/lib/libfoo.so.12": b"\x7fELF" + bytes(60) + big + big,
            "nvidia/foo/lib/libfoo_helper.so": b"\x7fELF no kernels",
            "nvidia/foo/_ext.cpython-311-x86_64-linux-gnu.so": bytes(100),
            "nvidia/foo/__init__.py": big,  # not a library: not read
            "nvidia/foo/lib/libfoo.so.12.txt": big,
            "nvidia_foo_cu12-12.1.0.dist-info/RECORD": b"",
        },
    )
    scratch = tmp_path / "scratch"
    found = kernels.scan_wheel(wheel, scratch)
    assert [library.member for library in found] == [
        "nvidia/foo/_ext.cpython-311-x86_64-linux-gnu.so",
        "nvidia/foo/lib/libfoo.so.12",
        "nvidia/foo/lib/libfoo_helper.so",
    ]
    assert {library.wheel for library in found} == {wheel.name}
    assert found[1].containers == 2 and found[1].kernels() == ["sm_80", "compute_80"]
    assert found[1].provider() == "nvidia-foo-cu12 12.1.0"
    assert [library.has_kernels() for library in found] == [False, True, False]
    assert list(scratch.iterdir()) == []  # every extracted library deleted, and its folder
    assert f"hpsforge: kernels: {wheel.name}: 3 libraries, 1 with kernels" in capsys.readouterr().out


# --- what runs where ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, architecture, runs",
    [
        ("sm_80", "sm_86", True),  # the same major, a later minor
        ("sm_80", "sm_89", True),
        ("sm_86", "sm_80", False),  # never backwards
        ("sm_80", "sm_90", False),  # never across majors
        ("sm_90", "sm_100", False),
        ("sm_90a", "sm_90", True),  # arch-specific: exactly that SM
        ("sm_100a", "sm_103", False),
        ("sm_90a", "sm_100", False),
        ("sm_100f", "sm_103", True),  # family-specific: the later ones of its family
        ("sm_120f", "sm_100", False),
        ("compute_90", "sm_120", True),  # PTX: the driver compiles it for any later GPU
        ("compute_90", "sm_89", False),
        ("compute_52", "sm_75", True),
        ("compute_120f", "sm_121", True),  # family PTX: its family only
        ("compute_100f", "sm_120", False),
        ("compute_90a", "sm_100", False),
        ("compute_90a", "sm_90", True),
    ],
)
def test_cuda_s_compatibility_rules(code, architecture, runs):
    assert kernels.runs_on(code, architecture) is runs


def test_ort_covers_blackwell_only_through_its_ptx():
    ort = _ort()
    assert [ort.covering(arch) for arch in ("sm_75", "sm_89", "sm_90", "sm_100", "sm_120", "sm_52")] == [
        "sm_75",
        "sm_86",
        "sm_90a",
        "compute_90",
        "compute_90",
        None,
    ]


def test_cubins_are_preferred_to_ptx_and_the_most_specific_cubin_of_an_sm_shown():
    library = _lib("lib/libx.so", sm_90=(10, MB), sm_90a=(10, MB), compute_80=(10, MB), sm_100=(1, MB))
    assert library.covering("sm_90") == "sm_90a"
    assert library.covering("sm_100") == "sm_100"
    assert library.covering("sm_89") == "compute_80"


def test_kernels_are_the_codes_with_a_hundredth_of_the_largest_s_bytes():
    # cuBLASLt's shape: one container per kernel and arch, so no arch is in half of them; its one
    # 147-byte compute_52 PTX is a stray that must not cover every GPU.
    lt = _lib(
        "nvidia/cublas/lib/libcublasLt.so.12",
        "nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl",
        sm_75=(116, 109 * MB),
        sm_80=(477, 198 * MB),
        sm_90a=(1375, 298 * MB),
        sm_100f=(414, 1164 * MB),
        sm_121=(4, 10_000),
        compute_52=(1, 147),
    )
    assert lt.kernels() == ["sm_75", "sm_80", "sm_90a", "sm_100f"]
    assert lt.strays() == ["sm_121", "compute_52"]
    assert lt.covering("sm_70") is None  # compute_52 would have covered it


def test_a_library_of_empty_modules_has_no_kernels():
    cufftw = _lib("nvidia/cufft/lib/libcufftw.so.11", sm_52=(1, 872))  # libcufftw's one empty cubin
    assert cufftw.kernels() == [] and not cufftw.has_kernels() and cufftw.strays() == ["sm_52"]


# --- the check, the table, the label -------------------------------------------------------------


def _coverage(*libraries: LibraryKernels, architectures=("sm_75", "sm_80", "sm_90", "sm_120")) -> Coverage:
    return Coverage(target="gpu-cu12", architectures=list(architectures), libraries=list(libraries))


def test_the_check_passes_when_every_library_with_kernels_covers_every_architecture():
    ops = _lib(
        "nvidia/cudnn/lib/libcudnn_ops.so.9",
        sm_75=(22, 45 * MB),
        sm_80=(22, 45 * MB),
        sm_90a=(22, 49 * MB),
        sm_120f=(22, 68 * MB),
        compute_120f=(22, 74 * MB),
    )
    cudart = _lib("nvidia/cuda_runtime/lib/libcudart.so.12")  # no container: takes no part
    cufftw = _lib("nvidia/cufft/lib/libcufftw.so.11", sm_52=(1, 872))  # empty modules only: no part
    coverage = _coverage(_ort(), ops, cudart, cufftw)
    kernels.check(coverage)
    assert [library.name for library in coverage.checked()] == ["libonnxruntime_providers_cuda.so", "libcudnn_ops.so.9"]
    assert kernels.label(coverage) == "sm_75,sm_80,sm_90,sm_120"
    assert coverage.cells()[f"{ORT_WHEEL}:onnxruntime/capi/libonnxruntime_providers_cuda.so"] == {
        "sm_75": "sm_75",
        "sm_80": "sm_80",
        "sm_90": "sm_90a",
        "sm_120": "compute_90",
    }


def test_an_uncovered_architecture_stops_naming_it_the_library_its_wheel_what_it_has_and_the_fix():
    ops = _lib(
        "nvidia/cudnn/lib/libcudnn_ops.so.9",
        sm_75=(22, 45 * MB),
        sm_80=(22, 45 * MB),
        sm_90a=(22, 49 * MB),
        compute_52=(1, 147),
    )
    coverage = _coverage(_ort(), ops, architectures=("sm_70", "sm_80", "sm_100"))
    assert coverage.missing() == [(ops, "sm_70"), (ops, "sm_100")]
    assert coverage.proven() == ["sm_80"] and kernels.label(coverage) == "sm_80"
    with pytest.raises(KernelCoverageError) as raised:
        kernels.check(coverage)
    message = str(raised.value)
    assert "no kernels for sm_70, sm_100" in message
    assert (
        "libcudnn_ops.so.9 (nvidia-cudnn-cu12 9.28.0.42, "
        "nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl, nvidia/cudnn/lib/libcudnn_ops.so.9) "
        "has no kernels for sm_70, sm_100: it has SASS sm_75, sm_80, sm_90a; PTX none (ignored as strays: compute_52)"
    ) in message
    assert "libonnxruntime_providers_cuda" not in message  # it covers all three (sm_100 through its PTX)
    assert raised.value.hint is not None
    assert "drop sm_70, sm_100 from targets.gpu-cu12.cuda.architectures in hpsforge.toml" in raised.value.hint
    assert "nvidia-cudnn-cu12" in raised.value.hint
    assert raised.value.exit_code is ExitCode.KERNEL_COVERAGE and ExitCode.KERNEL_COVERAGE == 14


def test_the_a_variant_covers_exactly_its_sm():
    hopper = _lib("lib/libhopper.so", sm_80=(5, MB), sm_90a=(5, MB))
    kernels.check(_coverage(hopper, architectures=("sm_90",)))
    with pytest.raises(KernelCoverageError, match="no kernels for sm_100"):
        kernels.check(_coverage(hopper, architectures=("sm_90", "sm_100")))


def test_nothing_is_proven_by_wheels_without_kernels():
    coverage = _coverage(_lib("nvidia/cuda_runtime/lib/libcudart.so.12"))
    assert coverage.proven() == [] and kernels.label(coverage) == ""
    with pytest.raises(KernelCoverageError, match="no library of its wheels has CUDA kernels"):
        kernels.check(coverage)
    kernels.check(_coverage(architectures=()))  # nothing promised, nothing to prove


def test_a_promise_names_an_sm_not_a_variant_or_ptx():
    for wrong in ("sm_90a", "compute_90", "90", "sm_9"):
        with pytest.raises(ValidationError):
            _coverage(architectures=(wrong,))


def test_the_table_shows_what_covers_each_architecture():
    lt = _lib(
        "nvidia/cublas/lib/libcublasLt.so.12",
        "nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl",
        sm_75=(116, 109 * MB),
        sm_90a=(1375, 298 * MB),
        sm_120f=(1147, 72 * MB),
        compute_52=(1, 147),
    )
    cudart = _lib("nvidia/cuda_runtime/lib/libcudart.so.12", "nvidia_cuda_runtime_cu12-12.9.79-py3-none-x.whl")
    nvblas = _lib(
        "nvidia/cublas/lib/libnvblas.so.12", "nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl"
    )
    text = kernels.table(_coverage(_ort(), lt, cudart, nvblas, architectures=("sm_120", "sm_75", "sm_89")))
    assert text.splitlines() == [
        "library                           wheel                         sm_75  sm_89  sm_120   kernels found",
        "libonnxruntime_providers_cuda.so  onnxruntime-gpu 1.26.0        sm_75  sm_86  ptx90    "
        "sm_60,sm_70,sm_75,sm_80,sm_86,sm_90a,ptx90",
        "libcublasLt.so.12                 nvidia-cublas-cu12 12.9.3.13  sm_75  —      sm_120f  "
        "sm_75,sm_90a,sm_120f (ignored: ptx52)",
        "proven on every library with kernels: sm_75,sm_120",
        # only the CUDA wheels' libraries without kernels: not every wheel's (cudart's wheel has none)
        "without kernels (1): libnvblas.so.12",
    ]
