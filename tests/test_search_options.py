"""Budget options: typed, checked before the model is read, each mistake its own message; on the command
line, one line and exit status 1."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

import edgepack
from edgepack.cli import parse_size
from edgepack.packager.search import Budget, make_budget
from edgepack.runtime.errors import OptionError

import quant_models

pytestmark = pytest.mark.packager

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


@pytest.mark.parametrize("budget, message", [
    ({"min_agreement": 99}, "--min-agreement must be between 0 and 1 (a fraction, e.g. 0.99 for 99%)"),
    ({"max_accuracy_drop": -1}, "--max-accuracy-drop must be between 0 and 100"),
    ({"min_cosine": 2}, "--min-cosine must be between -1 and 1"),
    ({"max_bytes": 0}, "--max-bytes must be positive"),
    ({"max_bytes": 10.5}, "--max-bytes must be a whole number of bytes"),
    ({"max_latency_ms": "fast"}, "--max-latency-ms must be a number"),
    ({"max_memory_mb": float("nan")}, "--max-memory-mb must be a number"),
    ({"max_trials": 0}, "max_trials must be a positive whole number"),
    ({"max_acuracy_drop": 1}, "unknown budget option(s) ['max_acuracy_drop']"),
])
def test_bad_budgets(budget, message):
    with pytest.raises(OptionError) as e:
        make_budget(budget)
    assert message in str(e.value)


def test_budget_record_and_misses():
    b = Budget(max_accuracy_drop=1.0, min_agreement=0.99, max_bytes=1000)
    assert b.active and not Budget().active
    assert b.record() == {"max_accuracy_drop": 1.0, "min_agreement": 0.99, "max_bytes": 1000, "max_trials": 24}
    misses = b.misses({"accuracy_drop": 1.5, "agreement": 0.995, "bytes": 1200})
    assert misses == {"max_accuracy_drop": {"value": 1.5, "limit": 1.0}, "max_bytes": {"value": 1200, "limit": 1000}}
    assert b.misses({"accuracy_drop": 1.0, "agreement": 0.99, "bytes": 1000}) == {}   # limits are inclusive
    assert b.misses({}) == {}   # what was not measured is not a miss


@pytest.fixture
def model(tmp):
    path = tmp / "m.onnx"
    onnx.save(quant_models.opset11_cnn(), path)
    calib = quant_models.random_npz(str(tmp / "c.npz"), count=8, x=(3, 8, 8))
    rng = np.random.default_rng(0)
    np.savez(tmp / "unlabelled.npz", x=rng.standard_normal((8, 3, 8, 8)).astype(np.float32))
    return str(path), calib, str(tmp / "unlabelled.npz")


@pytest.mark.parametrize("kw, message", [
    ({"budget": {"max_accuracy_drop": 1.0}, "quantize": "int8-dynamic"},
     "--max-accuracy-drop needs --eval DATA: held-out samples"),
    ({"budget": {"max_bytes": 10_000}, "quantize": "int8-dynamic", "eval_data": "e.npz"},
     "--max-bytes needs a fidelity budget too"),
    ({"budget": {"min_agreement": 0.99}, "eval_data": "e.npz"},
     "the budget search starts from int8-static (the generic-x86-64 profile's preferred mode"),
])
def test_budgets_refused_before_the_model_is_read(tmp, kw, message):
    with pytest.raises(OptionError) as e:
        edgepack.package(str(tmp / "absent.onnx"), str(tmp / "o.edgepack"), target="generic-x86-64", **kw)
    assert message in str(e.value)


def test_accuracy_budget_needs_labels(model, tmp):
    path, calib, unlabelled = model
    with pytest.raises(OptionError, match="--max-accuracy-drop cannot be measured: the eval data has no 'labels'"):
        edgepack.package(path, str(tmp / "o.edgepack"), quantize="int8-static", calibration=calib,
                         eval_data=unlabelled, budget={"max_accuracy_drop": 1.0})
    assert not (tmp / "o.edgepack").exists()


def test_preferred_mode_of_the_profile_without_quantize(model, tmp):
    path, calib, unlabelled = model
    result = edgepack.package(path, str(tmp / "o.edgepack"), target="generic-x86-64", calibration=calib,
                              eval_data=unlabelled, budget={"min_cosine": 0.9})
    assert result.report["search"]["mode"] == "int8-static"   # generic-x86-64 prefers int8-static


@pytest.mark.parametrize("text, value", [("300000", 300_000), ("300k", 300_000), ("1.5M", 1_500_000),
                                         ("2MiB", 2 * 2**20), ("64 KiB", 65536), ("1GB", 10**9)])
def test_sizes(text, value):
    assert parse_size(text) == value


def test_cli_budget_errors_are_one_line(model, tmp):
    path, calib, unlabelled = model
    for args, message in [(["--max-bytes", "lots"], "--max-bytes 'lots': give a size such as 300000"),
                          (["--min-agreement", "0.99"], "--min-agreement needs --eval DATA")]:
        r = subprocess.run([*EDGEPACK, "package", path, "-o", str(tmp / "o.edgepack"), "--quantize", "int8-static",
                            "--calibration", calib, *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
