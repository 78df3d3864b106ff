"""The traps onnxruntime's quantizers fall into on real graphs, and what edgepack does about each: the tests
count quantized nodes in the bundle's graph (subgraphs included), never trusting the quantizer."""

import os
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import edgepack
from edgepack.packager.quantize import count
from edgepack.runtime import load
from edgepack.packager.errors import QuantizationError, UnquantizedWeights

import quant_models



def _ops(model: onnx.ModelProto, depth=None) -> Counter:
    from edgepack.packager.graphwalk import nodes

    return Counter(n.op_type for n, d in nodes(model) if depth is None or d == depth)


def _reference(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _close(out, ref, cosine=0.99):
    """Quantized outputs point the same way as the fp32 ones (and are not the same bits: something changed)."""
    out, ref = out.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    return out @ ref / np.linalg.norm(out) / np.linalg.norm(ref) > cosine and not np.array_equal(out, ref)


def _int8(model, mode, out, tmp, **options):
    """Package a [N, 3, 8, 8]-input model in an int8 mode (static: calibrated on 32 random samples)."""
    calib = quant_models.random_npz(str(tmp / "calib.npz"), count=32, x=(3, 8, 8)) if mode == "int8-static" else None
    return edgepack.package(model, str(out), quantize=mode, calibration=calib, quantize_options=options)


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
def test_constant_weights_are_quantized(mode, tmp):
    model = quant_models.constant_weights()
    out = tmp / "b.edgepack"
    result = _int8(model, mode, out, tmp, op_types=["Conv", "MatMul"])
    q = result.report["quantization"]
    assert q["prepared"]["constants_to_initializers"] == 4
    graph = quant_models.bundle_model(out)
    census = count.census(graph)
    assert "float32" not in census                                    # no weight left in fp32
    assert sum(len(v) for v in census["int8"].values()) == 2          # the Conv and the MatMul
    ops = _ops(graph)
    assert ops["Constant"] == 0
    if mode == "int8-static":
        assert ops["DequantizeLinear"] >= 2
    else:
        assert (ops["ConvInteger"], ops["MatMulInteger"]) == (1, 1)
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert _close(load(out).run({"x": x})["y"], _reference(model, {"x": x}))


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic", "int4-weight"])
def test_weights_inside_if_branches_are_quantized(mode, tmp):
    model = quant_models.if_branches()
    rng = np.random.default_rng(3)
    os.makedirs(tmp / "calib")
    for i in range(16):  # a folder of complete feeds: the condition is an input too
        x = rng.standard_normal((1, 32)).astype(np.float32)
        np.savez(tmp / "calib" / f"{i:02}.npz", c=np.array(i % 2 == 0), x=x)
    out = tmp / "b.edgepack"
    calibration = str(tmp / "calib") if mode == "int8-static" else None
    options = {"op_types": ["MatMul"], **({"block_size": 16} if mode == "int4-weight" else {})}
    result = edgepack.package(model, str(out), quantize=mode, calibration=calibration, quantize_options=options)
    q = result.report["quantization"]
    assert q["prepared"]["constants_to_initializers"] == 1 and q["prepared"]["captured_weights_moved"] == 1
    graph = quant_models.bundle_model(out)
    inside = _ops(graph, depth=1)
    assert inside["MatMul"] == 0
    quantized_inside = {"int8-static": "MatMulInteger", "int8-dynamic": "MatMulInteger", "int4-weight": "MatMulNBits"}
    assert inside[quantized_inside[mode]] == 2                        # both branches
    assert q["quantized_total"] == 3 and q["float_targeted"] == []
    if mode == "int8-static":
        assert len(q["subgraph_nodes_dynamic"]) == 2                    # the branches: dynamic int8
        assert _ops(graph, depth=0)["QuantizeLinear"] >= 1             # the main graph is static QDQ
    session = load(out)
    for c in (True, False):
        x = rng.standard_normal((2, 32)).astype(np.float32)
        feeds = {"c": np.array(c), "x": x}
        assert _close(session.run(feeds)["y"], _reference(model, feeds))


def test_what_onnxruntime_cannot_quantize_stops_the_packager(tmp):
    # MatMulNBits takes 2-D weights only: the 4-bit quantizer skips a 3-D one without a word. edgepack names the
    # node and stops, unless told to go on
    out = tmp / "b.edgepack"
    with pytest.raises(UnquantizedWeights, match="left 1 weight node.* in fp32: batched;.*--allow-unquantized") as e:
        edgepack.package(quant_models.batched_weight(), str(out), quantize="int4-weight")
    assert e.value.nodes == ["batched"] and not out.exists()
    result = edgepack.package(quant_models.batched_weight(), str(out), quantize="int4-weight",
                              quantize_options={"allow_unquantized": True})
    assert any("left 1 weight node" in w for w in result.report["warnings"])
    assert result.report["quantization"]["quantized"] == {"MatMulNBits uint4": 1}
    assert load(out).run({"x": np.ones((2, 3, 32), np.float32)})["y"].shape == (2, 3, 32)


def test_a_quantizer_result_that_fails_to_run_is_an_error(tmp):
    # onnxruntime's dynamic per-channel quantizer writes zero points that its own kernel refuses for a 3-D
    # weight: the model loads, and fails on the first run
    out = tmp / "b.edgepack"
    with pytest.raises(QuantizationError, match="fails in onnxruntime.*batched_quant.*--per-tensor"):
        edgepack.package(quant_models.batched_weight(), str(out), quantize="int8-dynamic",
                         quantize_options={"per_channel": True})
    assert not out.exists()
    result = edgepack.package(quant_models.batched_weight(), str(out), quantize="int8-dynamic",
                              quantize_options={"per_channel": False})
    assert result.report["quantization"]["quantized_total"] == 2


def test_outer_weights_shared_by_the_main_graph_and_a_branch(tmp):
    model = quant_models.if_branches()
    else_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "else_branch")
    else_branch.node[0].input[1] = "w0"                              # the else branch reads the main weight
    model.graph.initializer.pop()                                    # w_outer is no longer used
    out = tmp / "b.edgepack"
    result = edgepack.package(model, str(out), quantize="int8-dynamic")
    assert result.report["quantization"]["quantized_total"] == 3
    assert "captured_weights_moved" not in result.report["quantization"]["prepared"]
    feeds = {"c": np.array(False), "x": np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)}
    assert _close(load(out).run(feeds)["y"], _reference(model, feeds))


def test_nothing_quantized_is_an_error(tmp):
    out = tmp / "b.edgepack"
    with pytest.raises(UnquantizedWeights, match="int8-dynamic quantized nothing") as e:
        edgepack.package(quant_models.no_weights(), str(out), quantize="int8-dynamic")
    assert not out.exists()
    # no weights at all: nothing to widen to (a new user's finding); the advice names the cause
    assert "--op-types" not in str(e.value).replace("no --op-types would", "") and "no weight tensors" in str(e.value)
    assert "package it without --quantize" in str(e.value)
    result = edgepack.package(quant_models.no_weights(), str(out), quantize="int8-dynamic",
                              quantize_options={"allow_unquantized": True})
    assert any("quantized nothing" in w for w in result.report["warnings"])


def test_weights_outside_the_op_types_are_named_when_nothing_is_quantized(tmp):
    with pytest.raises(UnquantizedWeights, match="widen --op-types .the model's float weights are on Conv") as e:
        edgepack.package(quant_models.opset11_cnn(), str(tmp / "b.edgepack"), quantize="int8-dynamic",
                         quantize_options={"op_types": ["MatMul"]})
    assert "package it without --quantize" not in str(e.value)


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
def test_opset_11_model_quantized_per_channel_loads_and_runs(mode, tmp):
    model = quant_models.opset11_cnn()
    out = tmp / "b.edgepack"
    # int8-static: the profile's QDQ format, whose DequantizeLinear axes are asserted below (a measured choice
    # may pick QOperator, which has none); the measured choice is tested in test_quantize_recipes.py
    pinned = {"recipe": "profile"} if mode == "int8-static" else {}
    result = _int8(model, mode, out, tmp, per_channel=True, op_types=["Conv", "Gemm"], **pinned)
    q = result.report["quantization"]
    if mode == "int8-static":
        assert q["prepared"]["opset"] == [11, 13]
        graph = quant_models.bundle_model(out)
        axes = [a.i for n in graph.graph.node if n.op_type == "DequantizeLinear"
                for a in n.attribute if a.name == "axis"]
        assert axes, "per-channel weights carry an axis"
    assert q["quantized_total"] == 2 and q["float_targeted"] == []
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert _close(load(out).run({"x": x})["y"], _reference(model, {"x": x}))


def test_no_files_left_behind(tmp, monkeypatch):
    work = tmp / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    calib = quant_models.random_npz(str(tmp / "calib.npz"), count=8, x=(3, 8, 8))
    model_path = tmp / "m.onnx"
    onnx.save(quant_models.constant_weights(), model_path)
    before = sorted(os.listdir(tmp))
    for mode in ("int8-static", "int8-dynamic", "int4-weight", "fp16"):
        kw = {"calibration": calib} if mode in ("int8-static", "fp16") else {}
        edgepack.package(str(model_path), str(tmp / "out.edgepack"), quantize=mode, **kw,
                         quantize_options={"allow_unquantized": True})
    assert os.listdir(work) == []
    assert sorted(os.listdir(tmp)) == sorted(before + ["out.edgepack"])


def test_gemm_is_rewritten_for_4_bit(tmp):
    model = quant_models.opset11_cnn()
    out = tmp / "b.edgepack"
    result = edgepack.package(model, str(out), quantize="int4-weight",
                              quantize_options={"op_types": ["Gemm"], "block_size": 16})
    q = result.report["quantization"]
    assert q["prepared"]["gemm_to_matmul"] == 1 and q["quantized"] == {"MatMulNBits uint4": 1}
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert _close(load(out).run({"x": x})["y"], _reference(model, {"x": x}))
