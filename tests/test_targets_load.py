"""load() on this device against the bundle's profile: provider fallback, refusal, force, lean mode."""

import json
import subprocess
import sys
import warnings

import numpy as np
import onnxruntime as ort
import pytest

import edgepack
from edgepack.runtime import load
from edgepack.runtime.device import detect
from edgepack.runtime.compat import TargetWarning
from edgepack.runtime.errors import DeviceMismatch
from edgepack.runtime.profile import host_profile_name, load_profile
from edgepack.runtime.ortconfig import session_options

GPU_PROVIDERS = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}


@pytest.fixture(scope="module")
def model(mlp_files):
    return mlp_files


def plain(path, feeds, so=None):
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def missing_feature_profile(tmp, name="needs-a-feature"):
    """The host's generic profile, requiring a real CPU feature this host lacks."""
    features = detect().features or frozenset()
    lacking = next(f for f in ("amx_tile", "amx_int8", "sve2", "sme", "avx10_2", "asimddp", "avx512_vnni")
                   if f not in features)
    d = load_profile(host_profile_name()).to_dict()
    d["name"] = name
    d["device"]["cpu_features"] = [*d["device"]["cpu_features"], lacking]
    d["device"]["required_features"] = [lacking]
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(d))
    return path, lacking


def test_jetson_bundle_falls_back_to_cpu_with_one_warning(model, tmp):
    d, feeds = model
    if GPU_PROVIDERS & set(ort.get_available_providers()):
        pytest.skip("this onnxruntime has a GPU provider: nothing to fall back from")
    edgepack.package(d / "m.onnx", output=tmp / "j.edgepack", target="jetson-orin-nano")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load(tmp / "j.edgepack")
    assert [w.category for w in caught] == [TargetWarning]
    message = str(caught[0].message)
    assert "runs on CPUExecutionProvider instead of TensorrtExecutionProvider" in message
    assert "CUDAExecutionProvider" in message and s.providers == ["CPUExecutionProvider"]
    assert s.notes and s.notes[0].startswith("runs on CPUExecutionProvider")
    assert np.array_equal(s.run(feeds)["a2"], plain(d / "m.onnx", feeds))


def test_bundle_for_this_host_loads_without_a_warning(model, tmp):
    d, feeds = model
    edgepack.package(d / "m.onnx", output=tmp / "h.edgepack")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = load(tmp / "h.edgepack")
    assert s.notes == () and s.device.architecture == load_profile(host_profile_name()).device.architecture


def test_missing_required_feature_is_refused_and_force_runs(model, tmp):
    d, feeds = model
    profile, lacking = missing_feature_profile(tmp)
    edgepack.package(d / "m.onnx", output=tmp / "f.edgepack", target=str(profile))
    with pytest.raises(DeviceMismatch, match=lacking) as e:
        load(tmp / "f.edgepack")
    assert "--force" in str(e.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load(tmp / "f.edgepack", force=True)
    assert len(caught) == 1 and f"forced to run although the profile requires {lacking}" in str(caught[0].message)
    assert np.array_equal(s.run(feeds)["a2"], plain(d / "m.onnx", feeds))


def test_cli_run_refuses_then_forces(model, tmp):
    d, _ = model
    profile, lacking = missing_feature_profile(tmp)
    edgepack.package(d / "m.onnx", output=tmp / "f.edgepack", target=str(profile))
    cmd = [sys.executable, "-m", "edgepack.cli", "run", str(tmp / "f.edgepack"), "--inputs", str(d / "feeds.npz")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("edgepack: error:") and lacking in r.stderr
    r = subprocess.run(cmd + ["--force"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    warnings_printed = [line for line in r.stderr.splitlines() if line.startswith("edgepack: warning:")]
    assert len(warnings_printed) == 1 and lacking in warnings_printed[0] and "a2:" in r.stdout


def test_lean_mode_is_bit_identical_to_onnxruntime_with_the_same_options(model, tmp):
    d, feeds = model
    edgepack.package(d / "m.onnx", output=tmp / "l.edgepack")
    s = load(tmp / "l.edgepack", lean=True)
    assert s.stats.lean and s.stats.threads == 1
    so = session_options(load_profile(host_profile_name()), lean=True)
    assert not so.enable_cpu_mem_arena and not so.enable_mem_pattern
    assert so.get_session_config_entry("session.disable_prepacking") == "1"
    assert np.array_equal(s.run(feeds)["a2"], plain(d / "m.onnx", feeds, so))
    assert not load(tmp / "l.edgepack").stats.lean


def test_lean_profile(model, tmp):
    d, feeds = model
    p = load_profile(host_profile_name()).to_dict()
    p["name"], p["memory"]["lean"] = "lean-board", True
    (tmp / "lean.json").write_text(json.dumps(p))
    edgepack.package(d / "m.onnx", output=tmp / "lp.edgepack", target=str(tmp / "lean.json"))
    s = load(tmp / "lp.edgepack")
    assert s.stats.lean and s.profile.memory.lean
    assert not load(tmp / "lp.edgepack", lean=False).stats.lean


def test_explicit_providers_give_no_fallback_warning(model, tmp):
    d, _ = model
    edgepack.package(d / "m.onnx", output=tmp / "j2.edgepack", target="jetson-orin-nano")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load(tmp / "j2.edgepack", providers=["CPUExecutionProvider"])
    assert s.providers == ["CPUExecutionProvider"]
    assert all("instead of" not in str(w.message) for w in caught)


def test_the_bundle_records_the_profile_it_was_built_for(model, tmp):
    d, _ = model
    edgepack.package(d / "m.onnx", output=tmp / "p.edgepack", target="raspberry-pi-4")
    with edgepack.runtime.open_bundle(tmp / "p.edgepack") as b:
        assert b.manifest.target == load_profile("raspberry-pi-4").to_dict()


def test_the_packager_takes_its_defaults_from_the_profile(model, tmp):
    d, _ = model
    p = load_profile("raspberry-pi-4").to_dict()
    p["name"], p["codec"]["level"], p["codec"]["frame_bytes"] = "small-frames", 9, 4096
    (tmp / "sf.json").write_text(json.dumps(p))
    edgepack.package(d / "m.onnx", output=tmp / "sf.edgepack", target=str(tmp / "sf.json"))
    with edgepack.runtime.open_bundle(tmp / "sf.edgepack") as b:
        encode = [s for s in b.manifest.raw["provenance"]["steps"] if s["name"] == "encode"][0]
        assert encode["options"] == {"level": 9, "frame_bytes": 4096}
        w0 = b.manifest.tensor("w0")  # 64 x 128 float32 = 32 KiB: eight 4 KiB frames
        assert [f.raw_length for f in w0.frames] == [4096] * 8
        assert b.manifest.target["name"] == "small-frames"
    # an explicit option wins over the profile's
    edgepack.package(d / "m.onnx", output=tmp / "sf2.edgepack", target=str(tmp / "sf.json"), level=3)
    with edgepack.runtime.open_bundle(tmp / "sf2.edgepack") as b:
        assert [s for s in b.manifest.raw["provenance"]["steps"] if s["name"] == "encode"][0]["options"]["level"] == 3


def test_a_bundle_over_the_storage_budget_is_reported(model, tmp):
    d, _ = model
    p = load_profile("raspberry-pi-4").to_dict()
    p["name"], p["memory"]["storage_mb"] = "no-room", 0
    (tmp / "nr.json").write_text(json.dumps(p))
    with pytest.warns(TargetWarning, match="over the 0 MB of storage"):
        edgepack.package(d / "m.onnx", output=tmp / "nr.edgepack", target=str(tmp / "nr.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edgepack.package(d / "m.onnx", output=tmp / "ok.edgepack", target="raspberry-pi-4")
