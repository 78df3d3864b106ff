"""What the analysis cannot prove safe is left alone, and the report says why; shared weights and
exporter idioms (Constant nodes, Identity aliases, Reshape of the channels) are handled."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

import prune_graphs as pg
from edgepack.packager.prune import PruneOptions, prune_model


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def reasons(result):
    return {layer: item["reason"] for item in result.report["left_alone"] for layer in item["layers"]}


def shapes(model):
    return {t.name: tuple(t.dims) for t in model.graph.initializer}


def conv_then(op_builder, **kw):
    """x -> Conv 3->8 -> Relu -> (op_builder) -> Conv 8->4 (graph output)."""
    b = pg.Builder()
    h = b.op("Relu", [b.conv("x", 3, 8)])
    h = op_builder(b, h)
    out = b.conv(h, 8, 4)
    return b, b.model({"x": ["N", 3, 8, 8]}, out, ["N", 4, 8, 8])


def test_attention_scores_are_left_alone():
    b = pg.Builder()
    q, k = b.linear("x", 16, 16), b.linear("x", 16, 16)
    s = b.op("Softmax", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 2, 1])])], axis=-1)
    out = b.op("MatMul", [s, b.linear("x", 16, 16)])
    model = b.model({"x": ["N", 6, 16]}, out, ["N", 6, 16])
    result = prune_model(model, PruneOptions(ratio=0.5))
    why = reasons(result)
    assert len(why) == 3 and all("not a constant matrix" in r for r in why.values())
    assert result.report["units"]["removed"] == 0
    assert result.report["params"]["after"] == result.report["params"]["before"]


def test_layernorm_across_channels_is_left_alone():
    b, model = conv_then(lambda b, h: b.op("Transpose", [b.op("LayerNormalization", [
        b.op("Transpose", [h], perm=[0, 2, 3, 1]), b.const(np.ones(8, np.float32))], axis=-1)], perm=[0, 3, 1, 2]))
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert "LayerNormalization" in next(iter(reasons(result).values()))
    assert shapes(result.model) == shapes(model)


def test_op_without_rule_is_left_alone_and_named():
    b, model = conv_then(lambda b, h: b.op("LRN", [h], size=3))
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert "LRN" in next(iter(reasons(result).values())) and "no pruning rule" in next(iter(reasons(result).values()))


def test_weight_read_by_another_op_is_left_alone():
    b = pg.Builder()
    h = b.op("Relu", [b.conv("x", 3, 8)])
    w = b.nodes[0].input[1]
    shape = b.op("Shape", [w])
    out = b.op("Reshape", [b.conv(h, 8, 4), b.op("Concat", [b.op("Slice", [shape, b.const(np.array([0], np.int64)),
                                                                           b.const(np.array([1], np.int64))]),
                                                              b.const(np.array([-1], np.int64))], axis=0)])
    model = b.model({"x": [8, 3, 8, 8]}, out, [8, 256])
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert any("also read by" in r for r in reasons(result).values())
    np.testing.assert_allclose(run(result.model, {"x": np.ones((8, 3, 8, 8), np.float32)}).shape, (8, 256))


def test_channels_read_inside_a_subgraph_are_left_alone():
    b = pg.Builder()
    h = b.op("Relu", [b.conv("x", 3, 8)])
    shape = ["N", 8, 8, 8]
    then = helper.make_graph([helper.make_node("Identity", [h], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, shape)])
    other = helper.make_graph([helper.make_node("Neg", [h], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, shape)])
    b.nodes.append(helper.make_node("If", ["c"], ["branch"], then_branch=then, else_branch=other, name="If_x"))
    out = b.conv("branch", 8, 4)
    vi = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8]),
          helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])]
    graph = helper.make_graph(b.nodes, "g", vi, [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT,
                                                                               ["N", 4, 8, 8])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert "If" in str(reasons(result)) and result.report["units"]["removed"] == 0


def test_reshape_splitting_channels_into_heads_is_left_alone():
    b = pg.Builder()
    h = b.linear("x", 16, 16)
    heads = b.op("Reshape", [h, b.const(np.array([0, 0, 4, 4], np.int64))])
    out = b.op("Reshape", [heads, b.const(np.array([0, 0, 16], np.int64))])
    out = b.linear(out, 16, 8)
    model = b.model({"x": ["N", 6, 16]}, out, ["N", 6, 8])
    result = prune_model(model, PruneOptions(ratio=0.5))
    first = result.report["left_alone"][0]
    assert "splits or scatters" in first["reason"]


def test_reshape_dropping_unit_axes_and_squeeze_are_followed():
    """Conv -> GlobalAveragePool [N, 8, 1, 1] -> Reshape [N, 8] (or Squeeze) -> Gemm."""
    for squeeze in (False, True):
        b = pg.Builder()
        pooled = b.op("GlobalAveragePool", [b.op("Relu", [b.conv("x", 3, 8)])])
        flat = (b.op("Squeeze", [pooled, b.const(np.array([2, 3], np.int64))]) if squeeze
                else b.op("Reshape", [pooled, b.const(np.array([-1, 8], np.int64))]))
        out = b.gemm(flat, 8, 3)
        model = b.model({"x": ["N", 3, 8, 8]}, out, ["N", 3])
        feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
        result = prune_model(model, PruneOptions(ratio=0.5))
        gemm = next(n for n in result.model.graph.node if n.op_type == "Gemm")
        assert shapes(result.model)[gemm.input[1]] == (3, 4)
        np.testing.assert_allclose(run(result.model, feeds), run(pg.masked(model, result.kept), feeds), rtol=1e-4,
                                   atol=1e-5)


def test_tied_weights_are_pruned_together():
    """One Gemm weight read by two layers (and reached through Constant and Identity nodes)."""
    b = pg.Builder()
    w = b.weight(16, 8)
    w_value = next(t for t in b.inits if t.name == w)
    b.inits.remove(w_value)
    b.nodes.append(helper.make_node("Constant", [], [w], value=w_value, name="const_w"))
    alias = b.op("Identity", [w])
    h1 = b.op("Relu", [b.op("Gemm", ["x", w], transB=1)])
    h2 = b.op("Relu", [b.op("Gemm", ["z", alias], transB=1)])
    out = b.op("Add", [b.gemm(h1, 16, 3), b.gemm(h2, 16, 3)])
    model = b.model({"x": ["N", 8], "z": ["N", 8]}, out, ["N", 3])
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((4, 8)).astype(np.float32), "z": rng.standard_normal((4, 8)).astype(np.float32)}
    result = prune_model(model, PruneOptions(ratio=0.5))
    gemms = [n for n in result.model.graph.node if n.op_type == "Gemm"]
    assert gemms[0].input[1] == gemms[1].input[1] == w and shapes(result.model)[w] == (8, 8)
    np.testing.assert_allclose(run(result.model, feeds), run(pg.masked(model, result.kept), feeds), rtol=1e-4,
                               atol=1e-5)


def test_graph_output_layer_is_left_alone():
    model, _ = pg.depthwise_separable()
    result = prune_model(model, PruneOptions(ratio=0.5))
    last = [n for n in model.graph.node if n.op_type == "Conv"][-1].name
    assert "graph output" in reasons(result)[last]


def test_a_bias_stored_once_for_two_layers_does_not_tie_them():
    """Exporters store equal initializers once (zero biases of deep-copied layers): each layer still
    chooses its own neurons."""
    b = pg.Builder(7)
    zero = b.const(np.zeros(16, np.float32), "shared_zero_bias")
    h1 = b.op("Relu", [b.op("Add", [b.op("MatMul", ["x", b.weight(8, 16)]), zero])])
    h2 = b.op("Relu", [b.op("Add", [b.op("MatMul", ["x", b.weight(8, 16)]), zero])])
    out = b.op("Add", [b.linear(h1, 16, 3), b.linear(h2, 16, 3)])
    model = b.model({"x": ["N", 8]}, out, ["N", 3])
    feeds = {"x": np.random.default_rng(4).standard_normal((5, 8)).astype(np.float32)}
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert result.report["units"] == {"prunable": 32, "removed": 16}
    assert result.kept[h1][1].tolist() != result.kept[h2][1].tolist()
    np.testing.assert_allclose(run(result.model, feeds), run(pg.masked(model, result.kept), feeds), rtol=1e-4,
                               atol=1e-5)


def test_weights_of_an_op_without_rule_are_reported_not_pruned():
    """A GRU's weights: no rule prunes them, and the report (and its summary line) says so rather than
    pruning nothing silently."""
    from onnx import TensorProto, numpy_helper

    from edgepack.packager.prune.summary import summary_lines

    rng = np.random.default_rng(0)
    hidden, size = 16, 8
    inits = [numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, size)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((hidden, 4)).astype(np.float32), "head")]
    graph = helper.make_graph([helper.make_node("GRU", ["x", "W", "R"], ["y", "last"], hidden_size=hidden),
                               helper.make_node("Squeeze", ["last"], ["h"], axes=[0]),
                               helper.make_node("MatMul", ["h", "head"], ["out"])], "gru",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, size])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    result = prune_model(model, PruneOptions(ratio=0.5))
    assert result.report["no_rule"] == {"GRU": 3 * hidden * size + 3 * hidden * hidden}
    assert any(line.startswith("  not pruned: GRU (1,152 weights): no pruning rule") for line in
               summary_lines(result.report))
    conv = prune_model(conv_then(lambda b, h: h)[1], PruneOptions(ratio=0.5))
    assert conv.report["no_rule"] == {}
