"""int8-static's format line tells the truth about how the format was chosen: when the profile's default is
kept because the fastest candidate measured was within the noise margin (recipes.MARGIN), it says so, rather
than "measured: fastest" beside a table where another candidate ran faster (a new user's finding)."""

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgepack.packager.quantize import recipes
from edgepack.packager.quantize.describe import recipe_lines
from edgepack.packager.quantize.options import make_options, resolve
from edgepack.runtime.profile import load_profile

import quant_models

pytestmark = pytest.mark.packager


def _cnn(path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "cw"),
             numpy_helper.from_array((rng.standard_normal((10, 8 * 6 * 6)) * 0.05).astype(np.float32), "gw")]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("Gemm", ["f", "gw"], ["y"], transB=1)]
    model = quant_models._model(nodes, [quant_models._f32("x", ["N", 3, 8, 8])],
                                [quant_models._f32("y", ["N", 10])], inits)
    calib = quant_models.random_npz(str(path / "calib.npz"), 16, x=(3, 8, 8))
    return model, calib


def _choose(tmp, monkeypatch, ratios):
    """choose() with the timings faked: fp32 1 ms, the candidates `ratios` (the profile's default first)."""
    model, calib = _cnn(tmp)
    monkeypatch.setattr(recipes, "_time", lambda sessions, feeds: [1.0, *ratios[:len(sessions) - 1],
                                                                   *[2.0] * (len(sessions) - 1 - len(ratios))])
    profile = load_profile("generic-x86-64")
    if recipes.host_runs(profile):
        pytest.skip(f"formats are measured only on a host that runs the target's kernels: {recipes.host_runs(profile)}")
    opts = resolve(make_options("int8-static", calibration=calib), profile)
    return recipes.choose(model, opts, profile, {})


def test_default_kept_within_the_margin_is_not_called_the_fastest(tmp, monkeypatch):
    choice = _choose(tmp, monkeypatch, [1.13, 1.10, 1.11])
    r, rows = choice.record, choice.candidates
    timed = [c for c in rows if "p50_ms" in c]
    assert timed[0]["name"] == r["profile_default"] == r["chosen"] and timed[0].get("chosen")
    assert r["by"] == "profile default kept" and r["fastest"] == timed[1]["name"]
    line = recipe_lines({"recipe": r, "candidates": rows})[0]
    assert "profile default kept" in line and timed[1]["name"] in line and "within 5%" in line
    assert "measured: the fastest" not in line and "fastest within tolerance" not in line


def test_a_candidate_faster_beyond_the_margin_is_measured_the_fastest(tmp, monkeypatch):
    choice = _choose(tmp, monkeypatch, [1.13, 0.80, 1.11])
    r, rows = choice.record, choice.candidates
    timed = [c for c in rows if "p50_ms" in c]
    assert r["by"] == "measured" and r["chosen"] == timed[1]["name"] and "fastest" not in r
    assert "measured: the fastest within tolerance" in recipe_lines({"recipe": r, "candidates": rows})[0]
