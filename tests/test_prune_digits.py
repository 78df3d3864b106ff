"""Channel pruning on a trained residual CNN (tests/digits.py): real weights, real accuracy."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgepack.packager.prune import PruneOptions, prune_model


def accuracy(model, d):
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    logits = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": d["x"]})[0]
    return float((logits.argmax(1) == d["y"]).mean())


def samples(d):
    return [{"x": d["calib"][i:i + 1]} for i in range(len(d["calib"]))]


def weight_shapes(model):
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [inits[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm")]


@pytest.fixture(scope="module")
def base(digits_cnn):
    return accuracy(digits_cnn["path"], digits_cnn)


def test_channels_03_shrinks_the_graph_and_runs(digits_cnn):
    model = onnx.load(digits_cnn["path"])
    result = prune_model(model, PruneOptions(ratio=0.3))
    onnx.checker.check_model(result.model)
    before, after = weight_shapes(model), weight_shapes(result.model)
    assert before == [(32, 1, 3, 3), (64, 32, 3, 3), (64, 64, 3, 3), (64, 64, 3, 3), (128, 1024), (10, 128)]
    assert after == [(22, 1, 3, 3), (45, 22, 3, 3), (45, 45, 3, 3), (45, 45, 3, 3), (90, 720), (10, 90)]
    params = result.report["params"]
    assert params["after"] <= 0.75 * params["before"]
    assert params["before"] == sum(np.prod(t.dims) for t in model.graph.initializer)
    assert result.report["flops"]["after"] < 0.6 * result.report["flops"]["before"]
    assert accuracy(result.model, digits_cnn) > 0.1  # runs on the whole test set


def test_reconstruct_03_loses_at_most_one_point(digits_cnn, base):
    model = onnx.load(digits_cnn["path"])
    result = prune_model(model, PruneOptions(ratio=0.3, reconstruct=True), samples(digits_cnn))
    assert base - accuracy(result.model, digits_cnn) <= 0.01
    refits = result.report["refits"]
    assert len(refits) == 5 and all(r["refit"] and r["error_after"] < r["error_before"] for r in refits)


def test_reconstruct_05_fp32_keeps_room_for_int8(digits_cnn, base):
    """channels:0.5 with the refit loses at most 1 point in fp32, leaving int8 a point of the 2-point bar;
    without the refit the same pruning loses far more."""
    model = onnx.load(digits_cnn["path"])
    refit = prune_model(model, PruneOptions(ratio=0.5, reconstruct=True), samples(digits_cnn))
    plain = prune_model(model, PruneOptions(ratio=0.5))
    assert refit.report["params"]["ratio"] < 0.3
    assert base - accuracy(refit.model, digits_cnn) <= 0.01
    assert accuracy(plain.model, digits_cnn) < accuracy(refit.model, digits_cnn) - 0.2


def test_batchnorm_nodes_follow_their_conv(digits_cnn, base):
    model = onnx.load(digits_cnn["path_bn"])
    result = prune_model(model, PruneOptions(ratio=0.3, reconstruct=True), samples(digits_cnn))
    inits = {t.name: tuple(t.dims) for t in result.model.graph.initializer}
    bns = [n for n in result.model.graph.node if n.op_type == "BatchNormalization"]
    assert [inits[n.input[1]] for n in bns] == [(22,), (45,), (45,), (45,)]
    assert all(inits[p] == inits[n.input[1]] for n in bns for p in n.input[2:])
    assert base - accuracy(result.model, digits_cnn) <= 0.01


@pytest.mark.parametrize("options", [dict(scope="global"), dict(criterion="activation"), dict(criterion="l2")],
                         ids=["global", "activation", "l2"])
def test_other_scopes_and_criteria_with_reconstruct(digits_cnn, base, options):
    model = onnx.load(digits_cnn["path"])
    result = prune_model(model, PruneOptions(ratio=0.3, reconstruct=True, **options), samples(digits_cnn))
    assert result.report["params"]["after"] <= 0.75 * result.report["params"]["before"]
    assert base - accuracy(result.model, digits_cnn) <= 0.01
