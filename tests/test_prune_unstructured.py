"""--prune unstructured:RATIO: the smallest weights become zeros, shapes and biases stay."""

import numpy as np
import onnxruntime as ort
from onnx import numpy_helper

import prune_graphs as pg
from edgepack.packager.prune import PruneOptions, prune_model


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def arrays(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def conv_weights(model):
    return [n.input[1] for n in model.graph.node if n.op_type == "Conv"]


def test_layer_scope_zeroes_the_smallest_of_each_weight():
    model, feeds = pg.residual_block()
    result = prune_model(model, PruneOptions(method="unstructured", ratio=0.4))
    before, after = arrays(model), arrays(result.model)
    assert {k: v.shape for k, v in before.items()} == {k: v.shape for k, v in after.items()}
    for name in conv_weights(model):
        w, z = before[name], after[name]
        assert (z == 0).sum() == int(0.4 * w.size)
        kept = z != 0
        assert np.array_equal(z[kept], w[kept]) and np.abs(w[~kept]).max() <= np.abs(w[kept]).min()
    biases = [n.input[2] for n in model.graph.node if n.op_type == "Conv"]
    assert all(np.array_equal(before[b], after[b]) for b in biases)
    assert result.report["zeros"]["after"] - result.report["zeros"]["before"] == sum(
        int(0.4 * before[n].size) for n in conv_weights(model))


def test_global_scope_uses_one_threshold():
    model, _ = pg.residual_block()
    result = prune_model(model, PruneOptions(method="unstructured", ratio=0.5, scope="global"))
    before, after = arrays(model), arrays(result.model)
    zeroed = np.concatenate([np.abs(before[n][after[n] == 0]) for n in conv_weights(model)])
    kept = np.concatenate([np.abs(before[n][after[n] != 0]) for n in conv_weights(model)])
    assert zeroed.max() <= kept.min()
    assert abs(len(zeroed) / (len(zeroed) + len(kept)) - 0.5) < 0.01
    fractions = [(after[n] == 0).mean() for n in conv_weights(model)]
    assert max(fractions) - min(fractions) > 0.05  # layers differ: one threshold, not one ratio each


def test_activation_criterion_weighs_by_the_input_it_meets():
    """|w| x mean |input| (Wanda) picks other weights than |w| alone (the Gemm after Flatten reads inputs of
    very different sizes), and on this data the outputs move less."""
    model, feeds = pg.flatten_gemm()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 1, 8, 8)).astype(np.float32)
    samples = [{"x": x[i:i + 1]} for i in range(20)]
    plain = prune_model(model, PruneOptions(method="unstructured", ratio=0.5), samples)
    wanda = prune_model(model, PruneOptions(method="unstructured", ratio=0.5, criterion="activation"), samples)
    first = next(n for n in model.graph.node if n.op_type == "Gemm").input[1]
    a, b = arrays(plain.model)[first], arrays(wanda.model)[first]
    assert (a == 0).sum() == (b == 0).sum() and not np.array_equal(a == 0, b == 0)
    # the refit-free fidelity on the calibration data is better when the activations are taken into account
    assert wanda.report["fidelity"]["cosine_mean"] >= plain.report["fidelity"]["cosine_mean"]


def test_small_ratio_barely_moves_the_outputs():
    model, feeds = pg.residual_block()
    result = prune_model(model, PruneOptions(method="unstructured", ratio=0.1))
    a, b = run(model, feeds).ravel(), run(result.model, feeds).ravel()
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_weights_inside_an_if_are_said_to_be_left_unpruned():
    """A voice-activity detector keeps its MatMul weights in the branches of an If: pruning, which reads the
    main graph, zeroed nothing and said only 'no weight was zeroed'. It now says where the weights are."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def branch(tag, as_constant):
        w = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), f"{tag}_w")
        nodes = [helper.make_node("MatMul", ["x", f"{tag}_w"], [f"{tag}_y"])]
        if as_constant:
            nodes.insert(0, helper.make_node("Constant", [], [f"{tag}_w"], value=w))
        return helper.make_graph(nodes, tag, [], [helper.make_tensor_value_info(f"{tag}_y", TensorProto.FLOAT, [1, 3])],
                                 initializer=[] if as_constant else [w])

    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch("then", True), else_branch=branch("else", False))],
        "vad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for spec in ("unstructured:0.5", "channels:0.5"):
        why = prune_model(model, spec).report["not_pruned"]
        assert why.endswith("24 of the 24 parameters are in If/Loop/Scan subgraphs, which pruning does not read"), why
