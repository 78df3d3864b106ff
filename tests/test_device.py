"""Device detection: /proc/cpuinfo of real boards (tests/data/cpuinfo), meminfo, macOS sysctl, this host."""

import os
import pathlib
import platform

import pytest

from edgepack.runtime import device as device_mod
from edgepack.runtime.device import (
    detect, normalize_architecture, parse_cpuinfo, parse_darwin_sysctl, parse_meminfo,
)

CPUINFO = pathlib.Path(__file__).parent / "data" / "cpuinfo"


def cpuinfo(name):
    return parse_cpuinfo((CPUINFO / name).read_text())


def test_raspberry_pi_4():
    cpu, features, cores = cpuinfo("arm_pi4.txt")
    assert cpu == "cortex-a72" and cores == ("cortex-a72",)
    assert features == {"fp", "asimd", "evtstrm", "crc32", "cpuid"}


def test_raspberry_pi_4_on_a_32_bit_kernel():
    cpu, features, _ = cpuinfo("arm_pi4_32bit.txt")
    assert cpu == "cortex-a72" and "neon" in features and "asimd" not in features


def test_raspberry_pi_5_has_dot_product():
    cpu, features, _ = cpuinfo("arm_pi5.txt")
    assert cpu == "cortex-a76" and {"asimddp", "fphp", "asimdhp"} <= features


def test_jetson_orin():
    cpu, features, _ = cpuinfo("arm_orin.txt")
    assert cpu == "cortex-a78ae" and "asimddp" in features


def test_x86_flags():
    cpu, features, cores = cpuinfo("x86_haswell_avx2.txt")
    assert cpu.startswith("Intel(R) Core(TM) i7-4770") and cores == ()
    assert {"avx2", "fma", "sse2"} <= features and "avx512f" not in features and "avx512_vnni" not in features
    cpu, features, _ = cpuinfo("x86_epyc_avx512_vnni.txt")
    assert cpu == "AMD EPYC" and {"avx512_vnni", "avx_vnni", "avx512bw"} <= features


def test_big_little_features_are_those_every_core_has():
    text = ("processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n"
            "processor\t: 1\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n"
            "processor\t: 2\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\n")
    cpu, features, cores = parse_cpuinfo(text)
    assert features == {"fp", "asimd", "asimddp"}
    assert cores == ("cortex-a55", "cortex-a76", "arm-0xfff") and cpu == "cortex-a55+cortex-a76+arm-0xfff"


def test_no_feature_line_means_unknown():
    assert parse_cpuinfo("processor\t: 0\nmodel name\t: something\n")[1] is None


def test_meminfo():
    text = "MemTotal:        3978124 kB\nMemFree:          200000 kB\nMemAvailable:    3500000 kB\n"
    assert parse_meminfo(text) == (3884, 3417)
    assert parse_meminfo("MemTotal: 1048576 kB\nMemFree: 524288 kB\n") == (1024, 512)
    assert parse_meminfo("") == (None, None)


def test_darwin_sysctl():
    arm = "hw.optional.AdvSIMD: 1\nhw.optional.arm.FEAT_DotProd: 1\nhw.optional.arm.FEAT_I8MM: 0\n"
    assert parse_darwin_sysctl(arm, "aarch64") == {"fp", "asimd", "asimddp"}
    x86 = ("machdep.cpu.features: FPU SSE SSE2 SSE4.2 AVX1.0 FMA\n"
           "machdep.cpu.leaf7_features: AVX2 BMI1 AVX512F AVX512VNNI\n")
    assert {"sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni"} <= parse_darwin_sysctl(x86, "x86_64")


@pytest.mark.parametrize("machine, arch", [("x86_64", "x86_64"), ("AMD64", "x86_64"), ("arm64", "aarch64"),
                                           ("aarch64", "aarch64"), ("armv7l", "armv7l")])
def test_architecture_names(machine, arch):
    assert normalize_architecture(machine) == arch


def test_detect_this_host():
    d = detect(["CPUExecutionProvider"])
    assert d.architecture == normalize_architecture(platform.machine())
    assert 1 <= d.cores <= (os.cpu_count() or 1)
    assert d.providers == ("CPUExecutionProvider",)
    if os.path.exists("/proc/cpuinfo"):
        assert d.features and d.memory_mb and d.available_mb is not None and d.available_mb <= d.memory_mb


def test_cgroup_limits_are_read(monkeypatch, tmp_path):
    """A container with 1.5 CPUs and 512 MB: cgroup v2 files under the process's own cgroup."""
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "memory.max").write_text(str(512 << 20))
    (tmp_path / "memory.current").write_text(str(100 << 20))
    monkeypatch.setattr(device_mod, "_cgroup_dirs", lambda controller: [str(tmp_path)])
    assert device_mod.cgroup_memory() == (512, 100)
    assert device_mod.usable_cores() == min(2, len(os.sched_getaffinity(0)))
    d = detect()
    assert d.memory_mb == 512 and d.available_mb <= 412


def test_cgroup_without_limits(monkeypatch, tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    monkeypatch.setattr(device_mod, "_cgroup_dirs", lambda controller: [str(tmp_path)])
    assert device_mod.cgroup_memory() == (None, None)
    assert device_mod.usable_cores() == len(os.sched_getaffinity(0))
