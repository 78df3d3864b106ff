"""Target profiles: strict schema, errors that name the key."""

import json

import pytest

from edgepack.runtime.errors import TargetError
from edgepack.runtime.profile import builtin_names, load_profile, profile_from_dict, resolve


SEVEN = ["raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "x86-64-avx2", "x86-64-avx512-vnni",
         "generic-aarch64", "generic-x86-64"]


def test_the_seven_profiles_load_and_validate():
    assert sorted(builtin_names()) == sorted(SEVEN)
    for name in SEVEN:
        p = load_profile(name)
        assert p.name == name and p.providers[-1] == "CPUExecutionProvider"
        assert p.description and p.sources, f"{name} must say what it is and where its values come from"
        # the file itself is strict: re-reading its dict gives the same profile
        assert profile_from_dict(p.to_dict(), name) == p


@pytest.mark.parametrize("name, arch, cpu, cores", [
    ("raspberry-pi-4", "aarch64", "cortex-a72", 4), ("raspberry-pi-5", "aarch64", "cortex-a76", 4),
    ("jetson-orin-nano", "aarch64", "cortex-a78ae", 6), ("generic-aarch64", "aarch64", "generic", None),
    ("x86-64-avx2", "x86_64", "x86-64-v3", None), ("generic-x86-64", "x86_64", "generic", None),
])
def test_device_of_each_profile(name, arch, cpu, cores):
    d = load_profile(name).device
    assert (d.architecture, d.cpu, d.cores) == (arch, cpu, cores)


def test_cpu_features_are_what_linux_reports():
    pi4, pi5 = load_profile("raspberry-pi-4").device, load_profile("raspberry-pi-5").device
    assert "asimd" in pi4.cpu_features and "asimddp" not in pi4.cpu_features  # Cortex-A72: no dot product
    assert "asimddp" in pi5.cpu_features and "fphp" in pi5.cpu_features      # Cortex-A76: dot product, fp16
    assert {"avx2", "fma"} <= set(load_profile("x86-64-avx2").device.cpu_features)
    assert "avx512_vnni" not in load_profile("x86-64-avx2").device.cpu_features
    assert "avx512_vnni" in load_profile("x86-64-avx512-vnni").device.cpu_features
    assert load_profile("x86-64-avx512-vnni").device.required_features == ["avx512_vnni|avx_vnni"]


@pytest.mark.parametrize("name, reduce_range", [
    ("x86-64-avx2", True), ("generic-x86-64", True), ("x86-64-avx512-vnni", False), ("raspberry-pi-4", False),
    ("raspberry-pi-5", False), ("jetson-orin-nano", False), ("generic-aarch64", False),
])
def test_reduce_range_only_on_x86_without_vnni(name, reduce_range):
    q = load_profile(name).quantization
    assert q.reduce_range is reduce_range
    assert q.per_channel and q.format == "qdq" and (q.activation_type, q.weight_type) == ("int8", "int8")


def test_jetson_prefers_tensorrt_then_cuda_then_cpu_and_fp16():
    p = load_profile("jetson-orin-nano")
    assert p.providers == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert p.quantization.preferred == "fp16"


def test_boards_have_budgets_and_threads_per_core():
    for name, ram, budget in (("raspberry-pi-4", 4096, 1024), ("raspberry-pi-5", 4096, 1024),
                              ("jetson-orin-nano", 8192, 2048)):
        p = load_profile(name)
        assert (p.memory.ram_mb, p.memory.budget_mb) == (ram, budget) and p.memory.storage_mb
        assert p.session.intra_op_threads == p.device.cores
        assert not p.memory.lean and p.session.prepacking and p.session.graph_optimization_level == "all"


def test_round_trip_through_dict():
    p = load_profile("generic-aarch64")
    assert profile_from_dict(p.to_dict()) == p


def _with(**changes):
    d = load_profile("generic-x86-64").to_dict()
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = d
        for part in parents:
            node = node[part]
        node[key] = value
    return d


@pytest.mark.parametrize("changes, key", [
    ({"turbo": True}, "'turbo'"),
    ({"session__threads": 4}, "'session.threads'"),
    ({"session__intra_op_threads": "four"}, "session.intra_op_threads"),
    ({"session__intra_op_threads": -1}, "session.intra_op_threads"),
    ({"session__memory_arena": 1}, "session.memory_arena"),
    ({"device__architecture": "riscv64"}, "device.architecture"),
    ({"device__cpu_features": "avx2"}, "device.cpu_features"),
    ({"device__cpu_features": [1]}, "device.cpu_features[0]"),
    ({"memory__budget_mb": 1.5}, "memory.budget_mb"),
    ({"providers": []}, "providers"),
    ({"codec__level": 40}, "codec.level"),
    ({"quantization__format": "qlinear"}, "quantization.format"),
    ({"device": []}, "device"),
    ({"sources": "the web"}, "sources"),
    ({"device__required_features": "avx2"}, "device.required_features"),
    ({"memory__lean": "yes"}, "memory.lean"),
    ({"memory__turbo": 1}, "'memory.turbo'"),
    ({"quantization__reduce_range": 0}, "quantization.reduce_range"),
    ({"providers": ["CUDA"]}, "providers"),
    ({"device__required_features": ["sve"]}, "device.required_features"),
    ({"device__cpu_features": ["AVX2"]}, "AVX2"),
    ({"device__cores": 2, "session__intra_op_threads": 4}, "session.intra_op_threads"),
])
def test_bad_profiles_name_the_key(changes, key):
    with pytest.raises(TargetError) as e:
        profile_from_dict(_with(**changes), "my.json")
    assert key in str(e.value) and "my.json" in str(e.value)


def test_user_profile_file(tmp_path):
    d = _with(name="my-board", memory__budget_mb=256)
    path = tmp_path / "board.json"
    path.write_text(json.dumps(d))
    p = resolve(str(path))
    assert p.name == "my-board" and p.memory.budget_mb == 256


def test_unknown_target_lists_known():
    with pytest.raises(TargetError, match="generic-x86-64"):
        load_profile("toaster")


def test_invalid_json_file(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TargetError, match="not valid JSON"):
        load_profile(str(tmp_path / "bad.json"))


def test_a_recorded_profile_may_carry_keys_this_runtime_does_not_know():
    d = _with(turbo=True, session__new_knob=3)
    with pytest.raises(TargetError, match="turbo"):
        profile_from_dict(d, "my.json")  # a profile someone wrote: a typo is an error
    p = profile_from_dict(d, "bundle (recorded target)", strict=False)  # from a newer packager: ignored
    assert p.name == "generic-x86-64"
    with pytest.raises(TargetError, match="session.intra_op_threads"):  # wrong types are errors either way
        profile_from_dict(_with(session__intra_op_threads="4"), "bundle", strict=False)
