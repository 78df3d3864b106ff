"""measure(): every figure, side by side with plain onnxruntime, the memory budget, progress, refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edgepack
from edgepack.runtime.measure import lines, measure, percentile
from edgepack.runtime.errors import DeviceMismatch, InputError
from edgepack.runtime.profile import host_profile_name, load_profile

FIGURES = ["bytes", "import_s", "open_s", "session_s", "first_run_s", "first_inference_s", "load_cpu_s",
           "peak_load_mb", "peak_mb", "steady_rss_mb", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s"]


@pytest.fixture(scope="module")
def files(mlp_files):
    d = mlp_files[0]
    edgepack.package(d / "m.onnx", output=d / "m.edgepack")
    return d


def test_bundle_and_baseline_side_by_side(files):
    r = measure(files / "m.edgepack", files / "m.onnx", runs=20, inputs=files / "feeds.npz", repeat=2)
    for side in ("bundle", "baseline"):
        for key in FIGURES:
            assert r[side][key] >= 0, (side, key)
        assert r[side]["runs"] == 20 and r[side]["processes"] == 2
        assert r[side]["p50_ms"] <= r[side]["p90_ms"] <= r[side]["p99_ms"] <= r[side]["max_ms"]
        assert r[side]["peak_load_mb"] <= r[side]["peak_mb"]
        assert r[side]["first_inference_s"] == pytest.approx(
            r[side]["open_s"] + r[side]["session_s"] + r[side]["first_run_s"], rel=0.5)
    assert r["bundle"]["bytes"] < r["baseline"]["bytes"]
    assert r["ratios"]["peak_mb"] == pytest.approx(r["bundle"]["peak_mb"] / r["baseline"]["peak_mb"])
    assert r["outputs_identical"] is True and r["outputs_max_abs_diff"] == 0.0
    assert r["budget"]["target"] == host_profile_name() and r["budget"]["fits"] is None
    assert r["budget"]["fits_device"] is True
    text = "\n".join(lines(r))
    assert "time to first inference" in text and "bit-identical" in text and "latency p99" in text


def test_budget_is_checked(files, tmp):
    p = load_profile(host_profile_name()).to_dict()
    p["name"], p["memory"]["budget_mb"] = "tiny-board", 16
    (tmp / "tiny.json").write_text(json.dumps(p))
    edgepack.package(files / "m.onnx", output=tmp / "t.edgepack", target=str(tmp / "tiny.json"))
    r = measure(tmp / "t.edgepack", runs=2)
    assert r["baseline"] is None and r["budget"]["budget_mb"] == 16 and r["budget"]["fits"] is False
    assert "DOES NOT FIT" in "\n".join(lines(r))
    p["memory"]["budget_mb"] = 100000
    (tmp / "big.json").write_text(json.dumps(p))
    assert measure(tmp / "t.edgepack", runs=1, target=str(tmp / "big.json"))["budget"]["fits"] is True


def test_progress_is_reported(files):
    seen = []  # through the top-level API, which wraps runtime.measure.measure
    edgepack.measure(files / "m.edgepack", runs=5, progress=lambda side, rep: seen.append((side, rep)), progress_s=0)
    runs = [rep for side, rep in seen if rep.get("stage") == "runs"]
    assert [rep["done"] for rep in runs] == [1, 2, 3, 4, 5] and all(side == "bundle" for side, _ in seen)


def test_refusal_comes_back_as_the_same_error(files, tmp):
    p = load_profile(host_profile_name()).to_dict()
    p["name"] = "needs-nothing-here"
    p["device"]["cpu_features"].append("edgepack_test_feature")
    p["device"]["required_features"] = ["edgepack_test_feature"]
    (tmp / "need.json").write_text(json.dumps(p))
    edgepack.package(files / "m.onnx", output=tmp / "n.edgepack", target=str(tmp / "need.json"))
    with pytest.raises(DeviceMismatch, match="edgepack_test_feature"):
        measure(tmp / "n.edgepack", runs=1)
    r = measure(tmp / "n.edgepack", runs=1, force=True)
    assert len(r["bundle"]["warnings"]) == 1 and "forced" in r["bundle"]["warnings"][0]


def test_bad_arguments(files):
    with pytest.raises(InputError, match="no such file"):
        measure(files / "missing.edgepack")
    with pytest.raises(InputError, match="runs"):
        measure(files / "m.edgepack", runs=-1)


def test_percentile_matches_numpy():
    values = list(np.random.default_rng(0).random(37))
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_cli_json_has_every_figure(files):
    r = subprocess.run([sys.executable, "-m", "edgepack.cli", "measure", str(files / "m.edgepack"), "--baseline",
                        str(files / "m.onnx"), "--runs", "10", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for side in ("bundle", "baseline"):
        assert all(isinstance(report[side][k], (int, float)) for k in FIGURES)
    assert set(report["ratios"]) >= {"peak_mb", "first_inference_s", "p50_ms", "p99_ms", "throughput_per_s"}
    r = subprocess.run([sys.executable, "-m", "edgepack.cli", "measure", str(files / "m.edgepack"), "--runs", "3"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "peak RSS during load" in r.stdout and "memory: peak" in r.stdout


def test_a_baseline_of_another_model_is_said_to_be_not_comparable(tmp):
    """A new user measured a bundle against the wrong .onnx: 'outputs: DIFFERENT' with no reason. The line now
    names both sides' outputs and asks whether the baseline is the bundle's source."""
    from edgepack.runtime.measure import _compare_outputs

    # as measure_child saves them: the arrays in order, and their names
    np.savez(tmp / "bundle.npz", np.zeros((1, 10), np.float32), names=np.array(["probs"]))
    np.savez(tmp / "baseline.npz", np.zeros((1, 10, 4), np.float32), np.zeros((1, 10), np.float32),
             names=np.array(["boxes", "scores"]))
    same, diff, mismatch = _compare_outputs(str(tmp))
    assert not same and diff is None
    assert mismatch == ("the bundle's outputs are probs float32[1, 10], the baseline's boxes float32[1, 10, 4], "
                        "scores float32[1, 10]")
    np.savez(tmp / "baseline.npz", np.ones((1, 10), np.float32), names=np.array(["probs"]))
    assert _compare_outputs(str(tmp)) == (False, 1.0, None)

    side = {k: 1.0 for k in FIGURES} | {"path": "m.edgepack", "providers": ["CPUExecutionProvider"], "lean": False,
                                        "warnings": [], "bytes": 36267}
    report = {"runs": 1, "repeat": 1, "inputs": None, "bundle": side, "baseline": {**side, "path": "/x/det.onnx"},
              "ratios": {}, "outputs_identical": False, "outputs_max_abs_diff": None, "outputs_mismatch": mismatch,
              "budget": {"peak_mb": 1.0, "device_available_mb": None, "budget_mb": None, "fits": None,
                         "target": "t", "fits_device": None}}
    text = "\n".join(lines(report))
    assert "outputs: NOT COMPARABLE: the bundle's outputs are probs" in text and "is det.onnx the model" in text
    # a 36 KB bundle's size is not '0.0 MB'
    assert "35.4 KB" in text and "0.0 MB" not in text
