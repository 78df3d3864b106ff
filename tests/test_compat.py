"""Comparing a profile with a device: refusals, differences, threads, the closest profile."""

import dataclasses
import pathlib

import pytest

from edgepack.runtime.compat import closest, compare, enforce
from edgepack.runtime.device import DeviceInfo, parse_cpuinfo
from edgepack.runtime.errors import DeviceMismatch, TargetError
from edgepack.runtime.profile import builtin_names, load_profile

CPUINFO = pathlib.Path(__file__).parent / "data" / "cpuinfo"


def board(name, arch, cores, memory_mb=None, available_mb=None):
    cpu, features, parts = parse_cpuinfo((CPUINFO / name).read_text())
    return DeviceInfo(arch, cpu, features, cores, memory_mb, available_mb, ("CPUExecutionProvider",), parts)


PI4 = board("arm_pi4.txt", "aarch64", 4, 3884, 3300)
PI5 = board("arm_pi5.txt", "aarch64", 4, 3950, 3500)
ORIN = board("arm_orin.txt", "aarch64", 6, 7620, 6000)
HASWELL = board("x86_haswell_avx2.txt", "x86_64", 4, 16000, 12000)
EPYC = board("x86_epyc_avx512_vnni.txt", "x86_64", 2, 24105, 21000)


@pytest.mark.parametrize("name, device", [
    ("raspberry-pi-4", PI4), ("raspberry-pi-5", PI5), ("jetson-orin-nano", ORIN), ("x86-64-avx2", HASWELL),
    ("x86-64-avx512-vnni", EPYC), ("generic-x86-64", HASWELL), ("generic-aarch64", PI4),
])
def test_each_profile_matches_its_own_device(name, device):
    c = compare(load_profile(name), device)
    assert c.refusals == [] and c.notes == [] and c.threads is None


def test_missing_required_feature_is_refused_naming_it():
    c = compare(load_profile("x86-64-avx512-vnni"), HASWELL)
    assert len(c.refusals) == 1 and "avx512_vnni or avx_vnni" in c.refusals[0]
    with pytest.raises(DeviceMismatch, match="avx512_vnni") as e:
        enforce(c, load_profile("x86-64-avx512-vnni"), "m.edgepack", force=False)
    assert isinstance(e.value, TargetError) and "--force" in str(e.value)
    notes = enforce(c, load_profile("x86-64-avx512-vnni"), "m.edgepack", force=True)
    assert notes[0].startswith("forced to run although") and "avx512_vnni" in notes[0]


def test_either_form_of_vnni_satisfies_the_requirement():
    alder_lake = dataclasses.replace(HASWELL, features=HASWELL.features | {"avx_vnni"})
    c = compare(load_profile("x86-64-avx512-vnni"), alder_lake)
    assert c.refusals == [] and any("avx512f" in n for n in c.notes)


def test_pi5_bundle_on_a_pi4_differs_but_runs():
    c = compare(load_profile("raspberry-pi-5"), PI4)
    assert c.refusals == []
    assert any("asimddp" in n for n in c.notes) and any("cortex-a72, not cortex-a76" in n for n in c.notes)


def test_another_architecture_is_a_difference_not_a_refusal():
    c = compare(load_profile("jetson-orin-nano"), EPYC)
    assert c.refusals == []
    assert "this CPU is x86_64, not aarch64" in c.notes
    assert c.threads == 2 and any("capped at 2" in n for n in c.notes)
    # required features are named per architecture: an ARM board is not refused for lacking VNNI
    assert compare(load_profile("x86-64-avx512-vnni"), PI5).refusals == []


def test_unknown_features_are_reported_not_refused():
    mac = dataclasses.replace(HASWELL, features=None)
    c = compare(load_profile("x86-64-avx512-vnni"), mac)
    assert c.refusals == [] and any("could not be read" in n for n in c.notes)


def test_memory_differences():
    small_pi = dataclasses.replace(PI4, memory_mb=1848, available_mb=700)
    notes = compare(load_profile("raspberry-pi-4"), small_pi).notes
    assert any("1848 MB of memory" in n for n in notes)
    assert any("only 700 MB" in n and "budget of 1024 MB" in n for n in notes)


def test_fewer_cores():
    two = dataclasses.replace(PI4, cores=2)
    c = compare(load_profile("raspberry-pi-4"), two)
    assert c.threads == 2 and any("2 cores are usable" in n for n in c.notes)


def test_closest_profile():
    profiles = [load_profile(n) for n in builtin_names()]
    assert closest(profiles, PI4).name == "raspberry-pi-4"
    assert closest(profiles, PI5).name == "raspberry-pi-5"
    assert closest(profiles, HASWELL).name == "x86-64-avx2"
    assert closest(profiles, EPYC).name == "x86-64-avx512-vnni"
