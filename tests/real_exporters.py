"""Models written the way real exporters write them (Paddle2ONNX, tf2onnx, detectors with symbolic sizes),
built with onnx.helper: each returns (model, feeds) with seeded random weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, f"{name}_value"))


def paddle_cnn(seed: int = 0, classes: int = 3, batch_dim: int = -1):
    """Opset 11, as Paddle2ONNX writes it: weights in Constant nodes, the dynamic batch as dim_value -1 and
    unnamed spatial dimensions ('?'), and an output whose batch is -1 too. Feeds: one [1, 3, 16, 24] image."""
    rng = np.random.default_rng(seed)
    nodes, x, c = [], "x", 3
    for i, o in enumerate((8, 16)):
        w = (rng.standard_normal((o, c, 3, 3)) * np.sqrt(2.0 / (9 * c))).astype(np.float32)
        nodes += [_const(f"w{i}", w), _const(f"b{i}", (rng.standard_normal(o) * 0.01).astype(np.float32)),
                  helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x, c = f"r{i}", o
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
              _const("fc", (rng.standard_normal((c, classes)) * 0.3).astype(np.float32)),
              helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "?", "?"])
    dims = inp.type.tensor_type.shape.dim
    dims[0].dim_value = batch_dim
    for d in dims[2:]:
        d.ClearField("dim_param")
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])
    out.type.tensor_type.shape.dim[0].dim_value = batch_dim
    graph = helper.make_graph(nodes, "paddle_cnn", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model, {"x": rng.random((1, 3, 16, 24), dtype=np.float32)}


def matmul_reducemax(seed: int = 0, d: int = 64, gather: bool = False):
    """Opset 13 MatMul layers ending in a ReduceMax with an `axes` attribute (an input from opset 18 on); with
    `gather`, an embedding table read by Gather feeds them (ids input)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((d, d)) * 0.15).astype(np.float32), f"w{i}")
             for i in range(2)]
    nodes, x = [], "x"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d])]
    feeds = {"x": rng.standard_normal((4, d)).astype(np.float32)}
    if gather:
        inits.append(numpy_helper.from_array(rng.standard_normal((50, d)).astype(np.float32), "table"))
        nodes.append(helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0))
        nodes.append(helper.make_node("Add", ["x", "emb"], ["xe"]))
        inputs.append(helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"]))
        feeds["ids"] = rng.integers(0, 50, 4).astype(np.int64)
        x = "xe"
    for i in range(2):
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        x = f"r{i}"
    nodes.append(helper.make_node("ReduceMax", [x], ["y"], axes=[-1], keepdims=1))
    graph = helper.make_graph(nodes, "reduce_mm", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                         ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model, feeds


def detector(seed: int = 0):
    """A detector-like conv with no padding and symbolic sizes ['batch', 3, 'height', 'width']: it fails on a
    1x1 image, so made-up feeds need real sizes."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "det",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "h2", "w2"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
