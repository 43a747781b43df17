"""dockerfiles/gpu/hps-gpu-check on the host: the fatbin reader, which kernels run on which compute
capability, loading libraries the way their users do, and what counts as a problem without a GPU."""

from __future__ import annotations

import ctypes.util
import struct
from pathlib import Path

import pytest

from tests.support import scripts

SCRIPT = Path(__file__).resolve().parents[2] / "dockerfiles" / "gpu" / "hps-gpu-check"


check = scripts.load(SCRIPT, "hps_gpu_check")


def _fatbin(entries: list[tuple[int, int]]) -> bytes:
    """One fatbin container: header, then (kind, arch) entries with small payloads."""
    body = b""
    for kind, arch in entries:
        payload = b"\0" * 16
        header = struct.pack("<HHII", kind, 0x101, 64, len(payload)) + b"\0" * 16 + struct.pack("<I", arch)
        body += header.ljust(64, b"\0") + payload
    return struct.pack("<IHHQ", check.FATBIN_MAGIC, 1, 16, len(body)) + body


def _elf(sections: dict[str, bytes]) -> bytes:
    """A minimal ELF64 file with the given sections (and .shstrtab), enough for the fatbin reader."""
    names = b"\0" + b"".join(name.encode() + b"\0" for name in [*sections, ".shstrtab"])
    data, offsets = b"", []
    for content in [*sections.values(), names]:
        offsets.append(64 + len(data))
        data += content
    section_table = 64 + len(data)
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x28, section_table)
    struct.pack_into("<HHH", header, 0x3A, 64, len(sections) + 2, len(sections) + 1)
    table = b"\0" * 64  # the null section
    name_offset = 1
    for (name, content), offset in zip([*sections.items(), (".shstrtab", names)], offsets, strict=True):
        table += struct.pack("<IIQQQQ", name_offset, 1, 0, 0, offset, len(content)).ljust(64, b"\0")
        name_offset += len(name) + 1
    return bytes(header) + data + table


def test_the_fatbin_reader_counts_each_arch_once_per_container(tmp_path):
    containers = [
        _fatbin([(2, 61), (2, 70), (2, 86)]),
        _fatbin([(2, 61), (2, 86), (2, 86)]),
        _fatbin([(1, 52), (2, 90)]),
    ]
    path = tmp_path / "libpaddle.so"
    path.write_bytes(_elf({".text": b"\x90" * 32, ".nv_fatbin": b"".join(containers)}))
    found = check.fatbin_archs(path)
    assert found["containers"] == 3
    assert found[("sm", 61)] == 2 and found[("sm", 86)] == 2 and found[("sm", 90)] == 1 and found[("ptx", 52)] == 1


def test_paddle_kernels_ignore_a_stray_container_built_for_every_arch(tmp_path):
    (tmp_path / "base").mkdir()
    own = [_fatbin([(2, arch) for arch in (61, 70, 75, 80, 86)]) for _ in range(6)]
    stray = _fatbin([(2, arch) for arch in (35, 50, 52, 60, 61, 70, 75, 80, 86, 90)])
    (tmp_path / "base" / "libpaddle.so").write_bytes(_elf({".nv_fatbin": b"".join([*own, stray])}))
    assert check.paddle_kernels(tmp_path) == {"sm": [61, 70, 75, 80, 86], "ptx": [], "containers": 7}


def test_a_file_that_is_not_elf_has_no_kernels(tmp_path):
    (tmp_path / "x.so").write_bytes(b"not an ELF file at all, just some bytes to read")
    assert check.fatbin_archs(tmp_path / "x.so")["containers"] == 0


PADDLE_262 = {"sm": [61, 70, 75, 80, 86], "ptx": []}


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((8, 6), "sm_86 cubins"),  # RTX 30xx, A10, A40
        ((8, 9), "sm_86 cubins"),  # Ada (L4, L40, RTX 40xx): sm_86 cubins run on 8.9
        ((8, 0), "sm_80 cubins"),  # A100, A30
        ((7, 5), "sm_75 cubins"),  # T4
        ((7, 0), "sm_70 cubins"),  # V100
        ((6, 1), "sm_61 cubins"),  # P4, P40
        ((6, 0), None),  # P100: sm_61 cubins do not run on 6.0
        ((9, 0), None),  # H100: no sm_90, no PTX
        ((12, 0), None),  # Blackwell
    ],
)
def test_which_gpus_paddle_2_6_2_has_kernels_for(capability, expected):
    assert check.runs_on(PADDLE_262, *capability) == expected


def test_ptx_is_compiled_for_newer_gpus():
    assert check.runs_on({"sm": [80], "ptx": [80]}, 9, 0) == "compute_80 PTX (JIT)"


@pytest.mark.parametrize(
    "code, thousands, text",
    [(8907, True, "8.9.7"), (8601, True, "8.6.1"), (12060, False, "12.6"), (11080, False, "11.8")],
)
def test_version_codes(code, thousands, text):
    assert check._version_code(code, thousands=thousands) == text


def test_cudnn_9_counts_its_version_differently():
    class Lib:
        class cudnnGetVersion:
            restype = None

            def __new__(cls):
                return Lib.code

    for Lib.code, text in ((91002, "9.10.2"), (8907, "8.9.7")):
        assert check._cudnn(Lib) == text


def test_a_library_that_loads_reports_the_file_it_resolved_to():
    libz = ctypes.util.find_library("z")
    row = check.load({"name": libz, "user": "test", "kind": "wheel", "provider": "the host"}, Path("/nowhere"))
    assert row["ok"] and Path(row["file"]).is_absolute() and Path(row["file"]).exists()
    assert row["version"] != "" and not row["standin"]


def _spec(*libraries: dict) -> dict:
    return {"target": "gpu-cu118", "versions": {"cuda": "11.8"}, "standin": False, "libraries": list(libraries)}


def test_without_a_gpu_only_the_images_own_libraries_must_resolve(monkeypatch):
    monkeypatch.setattr(check, "driver_devices", lambda: ([], "no NVIDIA driver in the container"))
    monkeypatch.setattr(check, "paddle_facts", lambda site_packages: {})
    driver = {"name": "libhpsforge-no-driver.so.1", "user": "Triton", "kind": "driver", "provider": "the host's driver"}
    facts = check.report(_spec(driver))
    assert facts["problems"] == []
    missing = {
        "name": "libhpsforge-missing.so",
        "user": "cuDNN",
        "kind": "archive",
        "provider": "cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz (vendor blob cudnn-8.9.7.29-cuda11)",
    }
    facts = check.report(_spec(driver, missing))
    assert len(facts["problems"]) == 1
    problem = facts["problems"][0]
    assert problem.startswith("libhpsforge-missing.so (opened by cuDNN) does not load")
    assert problem.endswith(
        "it comes from cudnn-linux-x86_64-8.9.7.29_cuda11-archive.tar.xz (vendor blob cudnn-8.9.7.29-cuda11)"
    )


def test_with_a_gpu_the_driver_libraries_count_and_unsupported_gpus_are_named(monkeypatch):
    device = {"index": 0, "name": "NVIDIA H100", "capability": (9, 0), "driver_cuda": 12040}
    monkeypatch.setattr(check, "driver_devices", lambda: ([device], ""))
    monkeypatch.setattr(check, "paddle_facts", lambda site_packages: {"version": "2.6.2", "kernels": PADDLE_262})
    driver = {"name": "libhpsforge-no-driver.so.1", "user": "Triton", "kind": "driver", "provider": "the host's driver"}
    problems = check.report(_spec(driver))["problems"]
    assert any(p.startswith("libhpsforge-no-driver.so.1 (opened by Triton) does not load") for p in problems)
    assert any("compute capability 9.0" in p and "Paddle 2.6.2 has kernels for sm_61" in p for p in problems)


def test_a_gpu_covered_by_the_kernels_the_build_proved_is_not_a_problem(monkeypatch):
    # A gpu-cu12 image: Paddle is the CPU build; the plan carries each library's kernels, read from its wheel.
    device = {"index": 0, "name": "NVIDIA B200", "capability": (10, 0), "driver_cuda": 12090}
    monkeypatch.setattr(check, "driver_devices", lambda: ([device], ""))
    monkeypatch.setattr(check, "paddle_facts", lambda site_packages: {"version": "3.3.1", "cuda": None})
    kernels = {
        "libonnxruntime_providers_cuda.so": ["sm_75", "sm_80", "sm_86", "sm_90a", "compute_90"],
        "libcublasLt.so.12": ["sm_75", "sm_80", "sm_90a", "sm_100a", "sm_120"],
    }
    spec = {**_spec(), "kernels": kernels, "architectures": ["sm_75", "sm_80", "sm_100"]}
    assert check.report(spec)["problems"] == []
    assert device["kernels"] == "cubins for every library; JIT from compute_90 PTX (JIT)"
    device["capability"] = (10, 3)  # B300: sm_100a runs on sm_100 only, PTX still JITs
    problems = check.report(spec)["problems"]
    assert problems == [
        "GPU 0 (NVIDIA B200) has compute capability 10.3; libcublasLt.so.12 of this image has no "
        'kernels for it (the image promises sm_75, sm_80, sm_100) (README, "GPU images": which '
        "image for which GPU)"
    ]


@pytest.mark.parametrize(
    "code, capability, runs",
    [
        ("sm_80", (8, 6), True),
        ("sm_86", (8, 0), False),
        ("sm_80", (9, 0), False),
        ("sm_90a", (9, 0), True),
        ("sm_90a", (9, 1), False),
        ("compute_90", (12, 0), True),
        ("compute_90", (8, 9), False),
        ("sm_100f", (10, 3), True),
        ("compute_120f", (12, 1), True),
        ("compute_100f", (12, 0), False),
    ],
)
def test_which_code_runs_on_which_gpu(code, capability, runs):
    assert check.code_runs_on(code, *capability) is runs


def test_a_driver_too_old_for_tritons_cudart_is_named(monkeypatch):
    device = {"index": 0, "name": "Tesla T4", "capability": (7, 5), "driver_cuda": 11040}
    monkeypatch.setattr(check, "driver_devices", lambda: ([device], ""))
    monkeypatch.setattr(check, "paddle_facts", lambda site_packages: {"version": "2.6.2", "kernels": PADDLE_262})
    problems = check.report(_spec())["problems"]
    assert problems == [
        "GPU 0 (Tesla T4): the driver supports CUDA 11.4; this image's CUDA 12 libraries need a driver for "
        "CUDA 12.0 or newer (Linux >= 525.60.13)"
    ]


def test_no_driver_means_no_gpu_and_says_how_to_get_one():
    devices, why = check.driver_devices()  # the test host has no NVIDIA driver
    assert devices == [] and "--gpus" in why


def test_count_prints_zero_without_a_gpu(capsys):
    assert check.main(["--count"]) == 0
    assert capsys.readouterr().out.strip() == "0"


def test_count_says_in_one_line_why_a_visible_gpu_is_not_used(monkeypatch, capsys):
    devices = [
        {"index": 0, "name": "Tesla K80", "capability": (3, 7), "driver_cuda": 12090},
        {"index": 1, "name": "NVIDIA L4", "capability": (8, 9), "driver_cuda": 12090},
    ]
    monkeypatch.setattr(check, "driver_devices", lambda: (devices, ""))
    spec = {"kernels": {"libcublasLt.so.12": ["sm_60", "sm_80", "compute_90"]}, "architectures": ["sm_60", "sm_80"]}
    assert check.usable_devices(spec) == (
        1,
        "GPU 0 (Tesla K80) has compute capability 3.7; libcublasLt.so.12 of this image has no kernels for it "
        '(the image promises sm_60, sm_80) (README, "GPU images": which image for which GPU)',
    )
    devices[1]["driver_cuda"] = 11080
    usable, why = check.usable_devices(spec)
    assert usable == 0 and why.endswith(
        "GPU 1 (NVIDIA L4): the driver supports CUDA 11.8; this image's CUDA 12 libraries need a driver for "
        "CUDA 12.0 or newer (Linux >= 525.60.13)"
    )
    monkeypatch.setattr(check, "SPEC", Path("/nowhere/gpu-stack.json"))
    monkeypatch.setattr(check, "paddle_facts", lambda site_packages: {})
    assert check.main(["--count"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0" and "Tesla K80" in lines[1] and len(lines) == 2
