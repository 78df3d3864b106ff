"""Target profiles: strict schema, errors that name the key."""

import json

import pytest

from edgepack.runtime.errors import TargetError
from edgepack.runtime.profile import builtin_names, load_profile, profile_from_dict, resolve


def test_builtin_profiles_load():
    names = builtin_names()
    assert {"generic-x86-64", "generic-aarch64"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.providers and p.description


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
