"""The search's 'quantized N% of the weight bytes' counts weights where exporters put them: a float trial of a
model whose weights are Constant nodes (Paddle, TF converters) quantized nothing, and says 0%."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager.search.bench import Bench, float_weight_bytes, quantized_fraction


def _model(as_constant: bool, dtype=np.float32):
    w = numpy_helper.from_array(np.ones((8, 4), dtype), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    inits = [w]
    if as_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["w"], value=w))
        inits = []
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph)


def test_constant_node_weights_count_as_float_weights():
    assert float_weight_bytes(_model(True)) == float_weight_bytes(_model(False)) == 8 * 4 * 4


def test_a_float_trial_of_constant_weights_quantized_nothing():
    bench = Bench(1.0, _model(True), None, None, None, [], {}, float_weight_bytes(_model(True)))
    assert quantized_fraction(bench, _model(True)) == 0.0
    assert quantized_fraction(bench, _model(False)) == 0.0
    assert quantized_fraction(bench, _model(False, np.float16)) == 1.0   # stored as fp16: no longer float32
