"""The pruning report's FLOPs count recurrent layers too: a GRU's, LSTM's or RNN's input and recurrent weights
multiply once per time step. A new user's GRU model reported FLOPs 640 -> 640, the head's Gemm alone."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager.prune.cost import compare

pytestmark = pytest.mark.packager


def _recurrent(op: str, gates: int, steps, hidden: int = 6, features: int = 4):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((1, gates * hidden, features)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, gates * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((10, hidden)).astype(np.float32), "fc")]
    nodes = [helper.make_node(op, ["x", "W", "R"], ["y", "h"], hidden_size=hidden, name="rnn"),
             helper.make_node("Squeeze", ["h"], ["hs"], name="sq"),
             helper.make_node("Gemm", ["hs", "fc"], ["out"], transB=1, name="head")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, features])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.graph.node[1].input.append("axes0")   # Squeeze-13 takes its axes as an input
    model.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
    return model, gates * hidden * (features + hidden)


@pytest.mark.parametrize("op,gates", [("GRU", 3), ("LSTM", 4), ("RNN", 1)])
def test_recurrent_weights_count_every_time_step(op, gates):
    model, weights = _recurrent(op, gates, 5)
    report = compare(model, model, model)
    head = 2 * 10 * 6
    assert report["flops"]["before"] == 2 * 5 * weights + head
    assert any(x["name"] == "rnn" and x["op"] == op for x in report["layers"])
    assert "unsized_layers" not in report["flops"]


def test_an_unknown_sequence_length_counts_one_step_and_says_so():
    model, weights = _recurrent("GRU", 3, "T")
    report = compare(model, model, model)
    assert report["flops"]["before"] == 2 * weights + 2 * 10 * 6 and report["flops"]["unsized_layers"] == 1
