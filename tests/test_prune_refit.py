"""The least-squares refit: convolution patches agree with onnxruntime, the normal equations agree with
numpy's solver, and a layer whose removed inputs were redundant is recovered exactly."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import prune_graphs as pg
from edgepack.packager.prune import PruneOptions, prune_model
from edgepack.packager.prune.patches import ConvGeometry, as_2d, patches
from edgepack.packager.prune.refit import Normal


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("attrs", [
    dict(pads=[1, 1, 1, 1]),
    dict(pads=[0, 2, 1, 0], strides=[2, 1], dilations=[1, 2]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER", strides=[2, 2]),
    dict(auto_pad="VALID", dilations=[2, 2]),
    dict(pads=[2, 1], strides=[2], kernel=(5,)),
], ids=["pad1", "asym-stride-dil", "same-upper", "same-lower", "valid-dil", "conv1d"])
def test_patches_reproduce_onnxruntime_conv(attrs):
    rng = np.random.default_rng(0)
    kernel = attrs.pop("kernel", (3, 3))
    spatial = (9,) * len(kernel) if len(kernel) == 1 else (9, 8)
    w = rng.standard_normal((4, 3, *kernel)).astype(np.float32)
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kernel), **attrs)
    graph = helper.make_graph([node], "c", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    y = as_2d(run(model, {"x": x}))
    geo = ConvGeometry.of(node, kernel, spatial)
    h, wd = y.shape[2:]
    rows, cols = np.repeat(np.arange(h), wd), np.tile(np.arange(wd), h)
    for n in range(2):
        got = patches(as_2d(x)[n], geo, rows, cols) @ w.reshape(4, -1).T
        np.testing.assert_allclose(got, y[n][:, rows, cols].T, rtol=1e-4, atol=1e-4)


def test_normal_equations_match_lstsq():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal((500, 6)), np.ones((500, 1))], axis=1)
    y = x @ rng.standard_normal((7, 3)) + 0.1 * rng.standard_normal((500, 3))
    n = Normal.zeros(7, 3)
    for i in range(0, 500, 37):  # in uneven blocks, as samples arrive
        n.add(x[i:i + 37], y[i:i + 37])
    theta = n.solve(np.zeros((7, 3)), ridge=1e-12, intercept=True)
    np.testing.assert_allclose(theta, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-6, atol=1e-8)
    assert n.error(theta) == pytest.approx(((x @ theta - y) ** 2).sum() / (y ** 2).sum(), rel=1e-6)


def test_ridge_pulls_towards_the_sliced_weights():
    rng = np.random.default_rng(2)
    x, theta0 = rng.standard_normal((3, 5)), rng.standard_normal((5, 2))
    n = Normal.zeros(5, 2)
    n.add(x, x @ rng.standard_normal((5, 2)))
    # three rows cannot pin five weights down: a strong ridge keeps them at theta0
    assert np.abs(n.solve(theta0, ridge=1e6, intercept=False) - theta0).max() < 1e-4


def redundant_mlp(matmul: bool):
    """Gemm 6->16, Relu, Gemm 16->4 (or MatMul + Add), where neurons 8..15 are copies of neurons 0..7 at half
    the scale, so Relu(h_{8+j}) = Relu(h_j) / 2: the copies carry nothing the originals do not."""
    b = pg.Builder(5)
    w1 = b.rng.standard_normal((8, 6)).astype(np.float32)
    b1 = b.rng.standard_normal(8).astype(np.float32)
    w1, b1 = np.concatenate([w1, w1 / 2]), np.concatenate([b1, b1 / 2])
    if matmul:  # the second layer's bias then lives in the Add after its MatMul
        h = b.op("Relu", [b.op("Add", [b.op("MatMul", ["x", b.const(w1.T.copy())]), b.const(b1)])])
        out = b.linear(h, 16, 4)
    else:
        h = b.op("Relu", [b.op("Gemm", ["x", b.const(w1), b.const(b1)], transB=1)])
        out = b.gemm(h, 16, 4)
    feeds = {"x": b.rng.standard_normal((64, 6)).astype(np.float32)}
    return b.model({"x": ["N", 6]}, out, ["N", 4]), feeds


@pytest.mark.parametrize("matmul", [False, True], ids=["gemm", "matmul-add"])
def test_refit_recovers_redundant_neurons_exactly(matmul):
    model, feeds = redundant_mlp(matmul)
    samples = [{"x": feeds["x"][i:i + 1]} for i in range(40)]
    plain = prune_model(model, PruneOptions(ratio=0.5))
    refit = prune_model(model, PruneOptions(ratio=0.5, reconstruct=True, ridge=1e-9), samples)
    relu = next(n for n in model.graph.node if n.op_type == "Relu").output[0]
    assert plain.kept[relu][1].tolist() == refit.kept[relu][1].tolist() == list(range(8))
    want = run(model, feeds)  # 64 samples, 40 of them seen by the refit
    assert np.abs(run(plain.model, feeds) - want).max() > 0.1
    np.testing.assert_allclose(run(refit.model, feeds), want, rtol=1e-4, atol=1e-4)
    [entry] = refit.report["refits"]
    assert entry["error_before"] > 0.01 and entry["error_after"] < 1e-8
