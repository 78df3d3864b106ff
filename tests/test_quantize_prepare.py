"""Graph preparation: each rewrite changes what it should, and nothing the model computes."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager.graphwalk import graphs, weights
from edgepack.packager.quantize import prepare

import quant_models


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _copy(model):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def test_constants_become_initializers_in_every_graph():
    model = quant_models.if_branches()
    before = _copy(model)
    assert prepare.constants_to_initializers(model) == 1
    assert [n.op_type for g, _ in graphs(model.graph) for n in g.node].count("Constant") == 0
    then_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "then_branch")
    assert [t.name for t in then_branch.initializer] == ["w_then"]
    feeds = {"c": np.array(True), "x": np.ones((2, 32), np.float32)}
    onnx.checker.check_model(model)
    assert np.array_equal(_run(model, feeds)[0], _run(before, feeds)[0])


def test_captured_weight_moves_into_its_only_reader():
    model = quant_models.if_branches()
    assert prepare.localize_captured_weights(model) == 1
    else_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "else_branch")
    assert [t.name for t in else_branch.initializer] == ["w_outer"]
    assert [t.name for t in model.graph.initializer] == ["w0"]          # read by the main graph: stays
    assert {n.name or n.op_type: w.name for n, w, d in weights(model) if d == 1}["MatMul"] == "w_outer"
    onnx.checker.check_model(model)


def test_a_shadowed_name_is_not_a_capture():
    model = quant_models.if_branches()
    else_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "else_branch")
    local = numpy_helper.from_array(np.eye(32, dtype=np.float32), "w_outer")   # the branch's own w_outer
    else_branch.initializer.append(local)
    model.graph.node.append(helper.make_node("MatMul", ["x", "w_outer"], ["z"]))
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 32]))
    assert prepare.localize_captured_weights(model) == 0                # the main graph reads w_outer itself


def test_opset_is_raised_and_the_outputs_are_unchanged():
    model = quant_models.opset11_cnn()
    raised = prepare.raise_opset(model, 13, "per-channel QDQ", "per tensor")
    assert [o.version for o in raised.opset_import if o.domain in ("", "ai.onnx")] == [13]
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert np.array_equal(_run(raised, {"x": x})[0], _run(model, {"x": x})[0])
    assert prepare.raise_opset(raised, 13, "", "") is raised


def test_gemm_to_matmul_computes_the_same():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "wt"),
             numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "wt", "b"], ["h"], transB=1, name="g1"),   # W^T, bias
             helper.make_node("Gemm", ["h", "w2"], ["y1"], name="g2"),                  # plain, no bias
             helper.make_node("Gemm", ["x", "w"], ["y2"], transA=1, name="g3")]       # transA: left alone
    io = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    model = helper.make_model(helper.make_graph(nodes, "g", [io("x", [8, 8])], [io("y1", [8, 16]), io("y2", [8, 16])],
                                                inits), opset_imports=[helper.make_opsetid("", 17)])
    before = _copy(model)
    assert prepare.gemm_to_matmul(model) == 2
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "MatMul", "Gemm"]
    assert "wt" not in {t.name for t in model.graph.initializer}        # replaced by its transpose
    x = rng.standard_normal((8, 8)).astype(np.float32)
    for a, b in zip(_run(model, {"x": x}), _run(before, {"x": x})):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_weights_computed_from_constants_are_folded(tmp):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w_t")]
    nodes = [helper.make_node("Transpose", ["w_t"], ["w"], perm=[1, 0], name="t"),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    io = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    model = helper.make_model(helper.make_graph(nodes, "g", [io("x", ["N", 16])], [io("y", ["N", 8])], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert prepare.computed_weights(model, ("MatMul",)) == ["mm"]
    folded = prepare.fold_constants(model, str(tmp))
    assert [n.op_type for n in folded.graph.node] == ["MatMul"] and not list(weights(model))
    assert [w.name for _, w, _ in weights(folded)] and prepare.computed_weights(folded, ("MatMul",)) == []
    x = rng.standard_normal((3, 16)).astype(np.float32)
    assert np.allclose(_run(folded, {"x": x})[0], _run(model, {"x": x})[0])


def test_name_nodes_gives_unique_names():
    model = quant_models.if_branches()
    assert prepare.name_nodes(model) == 5
    names = [n.name for g, _ in graphs(model.graph) for n in g.node]
    assert all(names) and len(set(names)) == len(names)
