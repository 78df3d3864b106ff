"""Calibration and evaluation data: an .npz of samples, or a folder of complete feeds."""

import numpy as np
import pytest

from edgepack.packager.datasets import load_samples
from edgepack.runtime.errors import OptionError


def test_npz_samples_are_batches_of_one(tmp):
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    np.savez(tmp / "d.npz", x=x, labels=np.array([0, 1, 2, 3]))
    s = load_samples(tmp / "d.npz", ["x"])
    assert len(s) == 4 and s.feeds[2]["x"].shape == (1, 2, 3) and np.array_equal(s.feeds[2]["x"][0], x[2])
    assert list(s.labels) == [0, 1, 2, 3]
    assert len(load_samples(tmp / "d.npz", ["x"], limit=2)) == 2


def test_folder_of_feeds_used_as_is(tmp):
    for i in range(3):
        np.savez(tmp / f"{i:02d}.npz", ids=np.full((1, 5), i, np.int64), state=np.zeros((2, 4), np.float32))
    s = load_samples(tmp, ["ids", "state"])
    assert len(s) == 3 and s.labels is None and s.feeds[1]["ids"][0, 0] == 1 and s.feeds[0]["state"].shape == (2, 4)


@pytest.mark.parametrize("arrays, match", [
    ({"y": np.zeros((2, 3))}, r"lacks \['x'\]"),
    ({"x": np.zeros((2, 3)), "z": np.zeros((2, 3))}, r"unknown arrays \['z'\]"),
    ({"x": np.zeros((2, 3)), "labels": np.zeros(1)}, "1 labels for 2 samples"),
])
def test_bad_samples(tmp, arrays, match):
    np.savez(tmp / "d.npz", **arrays)
    with pytest.raises(OptionError, match=match):
        load_samples(tmp / "d.npz", ["x"])


def test_missing_and_unreadable(tmp):
    with pytest.raises(OptionError, match="no such"):
        load_samples(tmp / "nope.npz", ["x"])
    (tmp / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(OptionError, match="cannot read"):
        load_samples(tmp / "bad.npz", ["x"])
    (tmp / "empty").mkdir()
    with pytest.raises(OptionError, match="no .npz"):
        load_samples(tmp / "empty", ["x"])
