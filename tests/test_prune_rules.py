"""Each dependency rule, on a graph built for it: the rewritten graph passes onnx.checker, runs, has
smaller weights, and computes exactly what the original computes with the removed channels zeroed."""

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


def prune_and_compare(build, ratio=0.5, **options):
    model, feeds = build()
    result = prune_model(model, PruneOptions(ratio=ratio, **options))
    onnx.checker.check_model(result.model)
    got = run(result.model, feeds)
    want = run(pg.masked(model, result.kept), feeds)
    assert got.shape == run(model, feeds).shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the reference differs from the unpruned model: the test would notice channels that were not removed
    assert not np.allclose(want, run(model, feeds), atol=1e-4)
    return model, result


def conv_shapes(model):
    return [tuple(next(t.dims for t in model.graph.initializer if t.name == n.input[1]))
            for n in model.graph.node if n.op_type == "Conv"]


def test_residual_add_prunes_both_sides_as_one_group():
    model, result = prune_and_compare(pg.residual_block)
    before, after = conv_shapes(model), conv_shapes(result.model)
    assert before == [(16, 3, 3, 3), (12, 16, 3, 3), (16, 12, 3, 3), (5, 16, 3, 3)]
    # the stem conv and the conv closing the residual branch lose the same 8 channels; BN follows
    assert after == [(8, 3, 3, 3), (6, 8, 3, 3), (8, 6, 3, 3), (5, 8, 3, 3)]
    bn = next(n for n in result.model.graph.node if n.op_type == "BatchNormalization")
    assert all(weights(result.model)[p] == (8,) for p in bn.input[1:])
    add = next(n for n in result.model.graph.node if n.op_type == "Add")
    assert result.kept[add.input[0]][1].tolist() == result.kept[add.input[1]][1].tolist()


def test_depthwise_couples_input_and_output_channels():
    model, result = prune_and_compare(pg.depthwise_separable)
    assert conv_shapes(result.model) == [(4, 3, 3, 3), (8, 1, 3, 3), (10, 8, 1, 1)]
    dw = [n for n in result.model.graph.node if n.op_type == "Conv"][1]
    assert next(a.i for a in dw.attribute if a.name == "group") == 4
    # with multiplier 2, output channels 2c and 2c+1 go with input channel c
    kept_in = result.kept[dw.input[0]][1]
    kept_out = result.kept[dw.output[0]][1]
    assert kept_out.tolist() == sorted([2 * c for c in kept_in] + [2 * c + 1 for c in kept_in])


def test_grouped_conv_removes_whole_groups():
    model, result = prune_and_compare(pg.grouped)
    assert conv_shapes(result.model) == [(6, 3, 3, 3), (6, 3, 3, 3), (4, 6, 3, 3)]
    g = [n for n in result.model.graph.node if n.op_type == "Conv"][1]
    assert next(a.i for a in g.attribute if a.name == "group") == 2
    kept = result.kept[g.input[0]][1]
    assert len(kept) == 6 and all(len({c // 3 for c in kept[i:i + 3]}) == 1 for i in (0, 3))


def test_concat_offsets_follow_each_input():
    model, result = prune_and_compare(pg.concat_block)
    shapes = conv_shapes(result.model)
    assert shapes[:2] == [(3, 3, 3, 3), (5, 3, 1, 1)]
    assert shapes[2] == (4, 3 + 3 + 5, 3, 3)  # the graph input's 3 channels in the middle stay
    cat = next(n for n in result.model.graph.node if n.op_type == "Concat")
    kept = result.kept[cat.output[0]][1]
    # [conv p: 0..5 | graph input x: 6..8 | conv q: 9..18]: half of p and of q go, x stays whole
    assert sum(k < 6 for k in kept) == 3 and {6, 7, 8} <= set(kept.tolist()) and sum(k >= 9 for k in kept) == 5


@pytest.mark.parametrize("reshape", [False, True], ids=["flatten", "reshape"])
def test_flatten_into_gemm_removes_channel_times_spatial_columns(reshape):
    model, result = prune_and_compare(lambda: pg.flatten_gemm(reshape=reshape))
    w = weights(result.model)
    gemms = [n for n in result.model.graph.node if n.op_type == "Gemm"]
    assert w[gemms[0].input[1]] == (8, 4 * 16)  # 4 of 8 channels x 16 positions; 8 of 16 neurons
    assert w[gemms[1].input[1]] == (3, 8)
    kept = result.kept[gemms[0].input[0]][1]
    channels = sorted({k // 16 for k in kept})
    assert kept.tolist() == [c * 16 + p for c in channels for p in range(16)]


def test_split_sizes_follow_the_kept_channels():
    model, result = prune_and_compare(pg.split_block)
    split = next(n for n in result.model.graph.node if n.op_type == "Split")
    sizes = next(t for t in result.model.graph.initializer if t.name == split.input[1])
    assert sum(onnx.numpy_helper.to_array(sizes)) == 6


def test_scopes_and_criteria_all_prune_the_same_amount_per_layer():
    model, feeds = pg.residual_block()
    for criterion in ("l1", "l2"):
        result = prune_model(model, PruneOptions(ratio=0.5, criterion=criterion))
        assert conv_shapes(result.model)[0] == (8, 3, 3, 3)
    result = prune_model(model, PruneOptions(ratio=0.5, scope="global"))
    assert result.report["units"]["removed"] == round(0.5 * result.report["units"]["prunable"])
    np.testing.assert_allclose(run(result.model, feeds), run(pg.masked(model, result.kept), feeds), rtol=1e-4,
                               atol=1e-5)


def test_round_to_keeps_a_multiple_of_channels():
    model, feeds = pg.residual_block()  # 16, 12 and 16 prunable channels
    result = prune_model(model, PruneOptions(ratio=0.3, round_to=8))
    assert conv_shapes(result.model) == [(8, 3, 3, 3), (8, 8, 3, 3), (8, 8, 3, 3), (5, 8, 3, 3)]
    np.testing.assert_allclose(run(result.model, feeds), run(pg.masked(model, result.kept), feeds), rtol=1e-4,
                               atol=1e-5)
    exact = prune_model(model, PruneOptions(ratio=0.3))
    assert conv_shapes(exact.model) == [(11, 3, 3, 3), (8, 11, 3, 3), (11, 8, 3, 3), (5, 11, 3, 3)]


def _per_channel(b, c):
    return b.const((b.rng.random((c, 1, 1)) + 0.5).astype(np.float32))


PASSTHROUGH = {
    "prelu": lambda b, h: b.op("PRelu", [h, _per_channel(b, 8)]),
    "mul-const": lambda b, h: b.op("Mul", [h, _per_channel(b, 8)]),
    "sub-div": lambda b, h: b.op("Div", [b.op("Sub", [h, _per_channel(b, 8)]), _per_channel(b, 8)]),
    "clip-leaky": lambda b, h: b.op("LeakyRelu", [b.op("Clip", [h, b.const(np.array(-1, np.float32)),
                                                                b.const(np.array(2, np.float32))])], alpha=0.1),
    "pad": lambda b, h: b.op("Pad", [h, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]),
    "resize": lambda b, h: b.op("Resize", [h, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest"),
    "avgpool": lambda b, h: b.op("AveragePool", [h], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
    "instancenorm": lambda b, h: b.op("InstanceNormalization", [h, b.const(np.ones(8, np.float32)),
                                                                b.const(np.zeros(8, np.float32))]),
    "nhwc-roundtrip": lambda b, h: b.op("Transpose", [b.op("Relu", [b.op("Transpose", [h], perm=[0, 2, 3, 1])])],
                                        perm=[0, 3, 1, 2]),
    "reduce-keepdims": lambda b, h: b.op("ReduceMean", [h], axes=[2], keepdims=1),  # opset 17: axes attribute
}


@pytest.mark.parametrize("op", sorted(PASSTHROUGH))
def test_channel_wise_ops_pass_channels_through(op):
    def build():
        b = pg.Builder(11)
        h = PASSTHROUGH[op](b, b.op("Relu", [b.conv("x", 3, 8)]))
        out = b.op("Relu", [b.conv(h, 8, 4)])
        return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 4, "H", "W"]), pg._image(b, 3)

    model, result = prune_and_compare(build)
    assert conv_shapes(result.model) == [(4, 3, 3, 3), (4, 4, 3, 3)]


def test_conv_transpose_reads_and_writes_channels():
    def build():
        b = pg.Builder(12)
        h = b.op("Relu", [b.conv("x", 3, 8)])
        up = b.op("ConvTranspose", [h, b.weight(8, 6, 2, 2), b.const(np.zeros(6, np.float32))], strides=[2, 2])
        out = b.conv(b.op("Relu", [up]), 6, 2)
        return b.model({"x": ["N", 3, 8, 8]}, out, ["N", 2, 16, 16]), pg._image(b, 3)

    model, result = prune_and_compare(build)
    inits = weights(result.model)
    up = next(n for n in result.model.graph.node if n.op_type == "ConvTranspose")
    assert inits[up.input[1]] == (4, 3, 2, 2) and inits[up.input[2]] == (3,)
