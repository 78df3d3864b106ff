"""Transformer blocks: the MLP hidden neurons are pruned (up-projection columns, down-projection rows), the
residual stream and attention heads are left alone, and the block keeps its output shape and runs."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import prune_graphs as pg
from edgepack.packager.prune import PruneOptions, prune_model


def run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def weights(model):
    return {t.name: tuple(t.dims) for t in model.graph.initializer}


def test_mlp_block_pruned_at_half_keeps_its_output_shape_and_runs():
    model, feeds = pg.transformer_mlp()
    result = prune_model(model, PruneOptions(ratio=0.5))
    onnx.checker.check_model(result.model)
    out = run(result.model, feeds)
    assert out.shape == run(model, feeds).shape == (2, 5, 32)
    mm = [n for n in result.model.graph.node if n.op_type == "MatMul"]
    w = weights(result.model)
    assert w[mm[0].input[1]] == (32, 64) and w[mm[1].input[1]] == (64, 32)
    np.testing.assert_allclose(out, run(pg.masked(model, result.kept), feeds), rtol=1e-4, atol=1e-5)
    # the down projection writes the residual stream (added to the graph input x): left alone, and said so
    [item] = result.report["left_alone"]
    assert item["layers"] == [mm[1].name] and item["channels"] == 32 and "'x'" in item["reason"]



def torch_encoder(layers=2, d=64, hidden=256):
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d, 4, hidden, dropout=0.0, batch_first=True, norm_first=True)
    net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()
    for p in net.parameters():  # deep copies start equal: give each layer weights of its own
        torch.nn.init.normal_(p, std=0.05)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 10, d),), f, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}}, opset_version=17, dynamo=False)
    return onnx.load_from_string(f.getvalue())


def test_torch_encoder_prunes_each_mlp_and_runs():
    model = torch_encoder()
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 10, 64)).astype(np.float32)} for _ in range(24)]
    plain = prune_model(model, PruneOptions(ratio=0.5), samples)
    refit = prune_model(model, PruneOptions(ratio=0.5, reconstruct=True), samples)
    for result in (plain, refit):
        onnx.checker.check_model(result.model)
        assert run(result.model, samples[0]).shape == (1, 10, 64)
        shapes = {layer["name"]: layer["shape"][1] for layer in result.report["layers"]}
        assert [s for n, s in shapes.items() if "linear1" in n] == [[64, 128], [64, 128]]
        assert [s for n, s in shapes.items() if "linear2" in n] == [[128, 64], [128, 64]]
        assert all(s == [64, 192] for n, s in shapes.items() if n.endswith("self_attn/MatMul"))
    # attention projections feed Shape/Reshape into heads: listed as left alone, with the reason
    assert any("self_attn" in item["layers"][0] for item in plain.report["left_alone"])
    # the refit makes up for most of what the removed neurons carried
    assert refit.report["fidelity"]["cosine_min"] > plain.report["fidelity"]["cosine_min"]
    assert refit.report["fidelity"]["cosine_min"] > 0.97
