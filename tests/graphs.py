"""Small ONNX graphs built with onnx.helper, each a kind of model where a naive loader breaks.

Every builder returns (model, feeds). Weights are random but seeded, so runs are reproducible.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, inits=(), opset=OPSET, name="g") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def mlp(d_in=64, hidden=(128, 128), d_out=10, seed=0, batch="N"):
    """MatMul + Add + Relu layers: the optimizers fuse these and prepack the weights."""
    rng = np.random.default_rng(seed)
    nodes, inits, x, d = [], [], "x", d_in
    for i, h in enumerate((*hidden, d_out)):
        w = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(np.float32)
        b = (rng.standard_normal(h) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        x = f"a{i}"
        if i < len(hidden):
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
        d = h
    model = _model(nodes, [_f32("x", [batch, d_in])], [_f32(x, [batch, d_out])], inits)
    return model, {"x": rng.standard_normal((3, d_in)).astype(np.float32)}


def mlp_bytes(total_mb=50, d=1024, seed=0):
    """An fp32 MLP of about `total_mb` MB of weights (d x d layers), random weights."""
    layers = max(1, int(total_mb * 2 ** 20 // (d * d * 4)))
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
        b = (rng.standard_normal(d) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Tanh", [f"a{i}"], [f"t{i}"])]
        x = f"t{i}"
    model = _model(nodes, [_f32("x", ["N", d])], [_f32(x, ["N", d])], inits)
    return model, {"x": rng.standard_normal((4, d)).astype(np.float32)}


def constant_weights(seed=0):
    """Weights held in Constant nodes (common in converted models), including a Constant scalar."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((32, 16))).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w_value")),
        helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
        helper.make_node("Constant", [], ["s"], value_float=0.5),
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Mul", ["a", "s"], ["y"]),
    ]
    model = _model(nodes, [_f32("x", ["N", 32])], [_f32("y", ["N", 16])])
    return model, {"x": rng.standard_normal((2, 32)).astype(np.float32)}


def shape_inputs(seed=0):
    """Reshape, Split, Slice, Tile and Resize whose shape-like inputs are initializers (int64, float scales):
    onnxruntime's shape inference and constant folding read them while loading."""
    rng = np.random.default_rng(seed)
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    inits = [
        i64("shape", [1, 4, 4, 4]), i64("split", [2, 2]), i64("starts", [0]), i64("ends", [2]), i64("axes", [1]),
        i64("reps", [1, 1, 2, 1]),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(rng.standard_normal((1, 4, 4, 4)).astype(np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Add", ["r", "bias"], ["rb"]),
        helper.make_node("Split", ["rb", "split"], ["s0", "s1"], axis=1),
        helper.make_node("Slice", ["s0", "starts", "ends", "axes"], ["sl"]),
        helper.make_node("Tile", ["sl", "reps"], ["t"]),
        helper.make_node("Resize", ["t", "", "scales"], ["y"], mode="nearest"),
        helper.make_node("Identity", ["s1"], ["z"]),
    ]
    model = _model(nodes, [_f32("x", [64])], [_f32("y", ["a", "b", "c", "d"]), _f32("z", ["a", "b", "c", "d"])], inits)
    return model, {"x": rng.standard_normal(64).astype(np.float32)}


def folded_initializers(seed=0):
    """Initializers the optimizers rewrite: Transpose of a weight (constant-folded), Conv + BatchNormalization
    (fused), MatMul with a transposed Gemm."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "conv_w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv_b"),
        numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "bn_scale"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bn_bias"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bn_mean"),
        numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "bn_var"),
        numpy_helper.from_array(rng.standard_normal((10, 8 * 6 * 6)).astype(np.float32), "fc_wt"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Reshape", ["r", "flat"], ["f"]),
        helper.make_node("Transpose", ["fc_wt"], ["fc_w"], perm=[1, 0]),
        helper.make_node("MatMul", ["f", "fc_w"], ["y"]),
    ]
    model = _model(nodes, [_f32("x", [1, 3, 8, 8])], [_f32("y", [1, 10])], inits)
    return model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}


def recurrent(seed=0):
    """LSTM and GRU, whose weights onnxruntime prepacks."""
    rng = np.random.default_rng(seed)
    inp, hid = 6, 5
    f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
    inits = [numpy_helper.from_array(f(1, 4 * hid, inp), "lw"), numpy_helper.from_array(f(1, 4 * hid, hid), "lr"),
             numpy_helper.from_array(f(1, 8 * hid), "lb"), numpy_helper.from_array(f(1, 3 * hid, hid), "gw"),
             numpy_helper.from_array(f(1, 3 * hid, hid), "gr"), numpy_helper.from_array(f(1, 6 * hid), "gb")]
    nodes = [
        helper.make_node("LSTM", ["x", "lw", "lr", "lb"], ["ly", "lh"], hidden_size=hid),
        helper.make_node("Squeeze", ["ly", "ax"], ["ls"]),
        helper.make_node("GRU", ["ls", "gw", "gr", "gb"], ["gy", "gh"], hidden_size=hid),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax"))
    model = _model(nodes, [_f32("x", [7, 2, inp])], [_f32("gy", [7, 1, 2, hid]), _f32("gh", [1, 2, hid])], inits)
    return model, {"x": rng.standard_normal((7, 2, inp)).astype(np.float32)}


def subgraphs(seed=0):
    """Weights inside If branches and a Loop body, one captured from the outer scope."""
    rng = np.random.default_rng(seed)
    w_then = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w_then")
    w_else = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w_else")
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w_then"], ["t_out"])], "then", [],
                               [_f32("t_out", [2, 4])], [w_then])
    else_g = helper.make_graph([helper.make_node("MatMul", ["x", "w_else"], ["e_out"])], "else", [],
                               [_f32("e_out", [2, 4])], [w_else])
    w_loop = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32) * 0.5, "w_loop")
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "w_loop"], ["h_mm"]),
         helper.make_node("Add", ["h_mm", "outer_b"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), _f32("h_in", [2, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _f32("h_out", [2, 4])], [w_loop])
    inits = [numpy_helper.from_array(np.array(3, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "true"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "outer_b")]
    nodes = [
        helper.make_node("If", ["c"], ["branch"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "true", "branch"], ["y"], body=body),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("c", TensorProto.BOOL, []), _f32("x", [2, 4])],
                   [_f32("y", [2, 4])], inits)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    return model, {"c": np.array(True), "x": x}


def odd_dtypes(seed=0):
    """int64 and bool initializers, a scalar, an empty tensor, a float16 weight, a string-free Where."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(np.arange(12, dtype=np.int64).reshape(3, 4), "i64"),
        numpy_helper.from_array(rng.random((3, 4)) > 0.5, "mask"),
        numpy_helper.from_array(np.array(2.5, np.float32), "scalar"),
        numpy_helper.from_array(np.zeros((0, 4), np.float32), "empty"),
        numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float16), "h"),
    ]
    nodes = [
        helper.make_node("Cast", ["i64"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "f"], ["xf"]),
        helper.make_node("Where", ["mask", "xf", "scalar"], ["w"]),
        helper.make_node("Concat", ["w", "empty"], ["cat"], axis=0),
        helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["cat", "hf"], ["y"]),
        helper.make_node("Shape", ["empty"], ["n"]),
    ]
    model = _model(nodes, [_f32("x", [3, 4])],
                   [_f32("y", [3, 4]), helper.make_tensor_value_info("n", TensorProto.INT64, [2])], inits)
    return model, {"x": rng.standard_normal((3, 4)).astype(np.float32)}


def typed_fields(seed=0):
    """Weights stored in float_data / int64_data instead of raw_data (older exporters write these)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [16, 8], w.ravel().tolist()),
             helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 8])]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Reshape", ["m", "shape"], ["y"])]
    model = _model(nodes, [_f32("x", [2, 16])], [_f32("y", [2, 8])], inits)
    return model, {"x": rng.standard_normal((2, 16)).astype(np.float32)}


ALL = {
    "mlp": mlp, "constant_weights": constant_weights, "shape_inputs": shape_inputs,
    "folded_initializers": folded_initializers, "recurrent": recurrent, "subgraphs": subgraphs,
    "odd_dtypes": odd_dtypes, "typed_fields": typed_fields,
}
