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


def test_npz_gives_a_scalar_input_one_value_per_sample(tmp):
    """A voice-activity detector's sample rate is a rank-0 input: an npz of samples could not give it (sample i
    was always sr[i:i+1], shape [1]); now its array holds one value per sample, fed as a 0-d array."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edgepack.packager.quantize.samples import load_for

    graph = helper.make_graph(
        [helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "srf"], ["y"])],
        "vad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    np.savez(tmp / "d.npz", x=np.ones((3, 4), np.float32), sr=np.array([8000, 16000, 16000], np.int64))
    s = load_for(model, str(tmp / "d.npz"), "eval data")
    assert [f["sr"].shape for f in s.feeds] == [(), (), ()] and isinstance(s.feeds[1]["sr"], np.ndarray)
    assert int(s.feeds[1]["sr"]) == 16000 and s.feeds[1]["x"].shape == (1, 4)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, s.feeds[0])[0][0, 0] == 8000
    # a folder's files are complete feeds, used as they are: a scalar there is saved as a 0-d array
    (tmp / "f").mkdir()
    np.savez(tmp / "f" / "0.npz", x=np.ones((1, 4), np.float32), sr=np.array(16000, np.int64))
    assert load_for(model, str(tmp / "f"), "eval data").feeds[0]["sr"].shape == ()
    # a non-scalar input is still a batch of one
    assert load_samples(tmp / "d.npz", ["x", "sr"]).feeds[0]["sr"].shape == (1,)
    onnx.checker.check_model(model)
