"""Fidelity figures say 'held out' only when they are: --eval given the calibration data itself (the same
file, or a copy of it) is reported as not held out, with a warning that the figures are optimistic."""

import shutil

import pytest

import edgepack
from edgepack.packager.fidelity.check import same_data

import quant_models

pytestmark = pytest.mark.packager


@pytest.fixture(scope="module")
def digits():
    return quant_models.digits_cnn()


def _package(digits, out, eval_data):
    return edgepack.package(digits["model"], str(out), quantize="int8-static", calibration=digits["calibration"],
                            eval_data=eval_data, quantize_options={"calibration_samples": 16, "recipe": "profile"})


@pytest.mark.parametrize("copy", [False, True])
def test_eval_equal_to_the_calibration_data_is_not_held_out(digits, tmp, copy):
    data = digits["calibration"]
    if copy:
        data = str(tmp / "copy.npz")
        shutil.copyfile(digits["calibration"], data)
    result = _package(digits, tmp / "c.edgepack", data)
    assert result.report["fidelity"]["held_out"] is False
    warned = result.report["warnings"]
    assert any("is the calibration data" in w and "not held out" in w for w in warned), warned


def test_eval_data_sharing_samples_with_the_calibration_is_not_held_out(digits, tmp):
    """Calibration rows mixed into eval data, in another order: caught sample by sample."""
    import numpy as np

    cal, ev = np.load(digits["calibration"]), np.load(digits["eval"])
    mixed = tmp / "mixed.npz"
    np.savez(mixed, x=np.concatenate([ev["x"][:40], cal["x"][:16][::-1]]),
             labels=np.concatenate([ev["labels"][:40], np.zeros(16, ev["labels"].dtype)]))
    result = _package(digits, tmp / "m.edgepack", str(mixed))
    assert result.report["fidelity"]["held_out"] is False
    warned = result.report["warnings"]
    assert any("16 of the 56 --eval samples are also calibration samples" in w for w in warned), warned


def test_other_eval_data_is_held_out(digits, tmp):
    result = _package(digits, tmp / "e.edgepack", digits["eval"])
    assert result.report["fidelity"]["held_out"] is True
    assert not any("is the calibration data" in w for w in result.report.get("warnings", []))


def test_same_data(tmp):
    a, b, c = tmp / "a.npz", tmp / "b.npz", tmp / "c.npz"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 10)
    c.write_bytes(b"x" * 9 + b"y")
    assert same_data(a, a) and same_data(str(a), b) and not same_data(a, c)
    assert not same_data(a, None) and not same_data({"x": 1}, a) and not same_data(a, tmp / "missing.npz")
