"""The conversion check's comparison: floats within tolerance, everything else exactly."""

import numpy as np
import pytest

from edgepack.packager.convert.check import compare
from edgepack.packager.errors import ConversionMismatch


def test_within_tolerance_reports_the_max_difference():
    ref = np.array([[1.0, -2.0], [0.0, 1e3]])
    got = (ref + np.array([[1e-4, 0.0], [5e-6, 0.5]])).astype(np.float32)
    m = compare("m", {"y": got}, {"y": ref}, rtol=1e-3, atol=1e-5)
    assert m["max_abs_diff"] == pytest.approx(0.5) and m["exact"] == []


def test_beyond_tolerance_names_output_index_and_values():
    ref = np.array([1.0, 2.0, 3.0], np.float32)
    got = np.array([1.0, 2.01, 3.0], np.float32)
    with pytest.raises(ConversionMismatch, match=r"output 'y' differs from the source model by up to 0\.01 \(1 of 3 "
                                                  r"values .* at index \[1\]: onnx 2\.01, source 2\)"):
        compare("m", {"y": got}, {"y": ref}, rtol=1e-3, atol=1e-5)


def test_nan_must_match_nan():
    ref = np.array([np.nan, 1.0])
    compare("m", {"y": np.array([np.nan, 1.0])}, {"y": ref}, rtol=0, atol=0)
    with pytest.raises(ConversionMismatch, match="up to inf"):
        compare("m", {"y": np.array([0.0, 1.0])}, {"y": ref}, rtol=1e-3, atol=1e-5)


def test_labels_must_match_exactly():
    m = compare("m", {"label": np.array(["a", "b"], object)}, {"label": np.array(["a", "b"])}, 1e-3, 1e-5)
    assert m["exact"] == ["label"]
    with pytest.raises(ConversionMismatch, match=r"'label': 1 of 3 values differ .* flat index 2: onnx 1, source 2\)"
                                                  r"; labels must match exactly"):
        compare("m", {"label": np.array([0, 1, 1])}, {"label": np.array([0, 1, 2])}, 1.0, 1.0)


def test_shape_and_dtype_kind_mismatch():
    with pytest.raises(ConversionMismatch, match=r"shape \[2, 1\] but the source model gives \[2\]"):
        compare("m", {"y": np.zeros((2, 1))}, {"y": np.zeros(2)}, 1e-3, 1e-5)
    with pytest.raises(ConversionMismatch, match="is int64 but the source model gives float64"):
        compare("m", {"y": np.zeros(2, np.int64)}, {"y": np.zeros(2)}, 1e-3, 1e-5)
