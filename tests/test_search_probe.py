"""The cheap sensitivity signal (search/probe.py): one pass ranks the node whose quantization destroys a
narrow input that shares a tensor with a wide one above nodes int8 handles, with no quantization per node."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager.datasets import Samples
from edgepack.packager.quantize import make_options, resolve
from edgepack.packager.search import probe, sensitivity
from edgepack.packager.search.bench import make_bench
from edgepack.runtime.profile import load_profile

pytestmark = pytest.mark.packager


def _model():
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((16, 16)) * 0.3).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((17, 4)) * 0.3).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Concat", ["r", "side"], ["cat"], axis=1, name="concat"),   # side: 1,000 to 2,000
             helper.make_node("MatMul", ["cat", "w2"], ["y"], name="head")]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
                                              helper.make_tensor_value_info("side", TensorProto.FLOAT, ["N", 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_probe_ranks_the_wide_range_concat_first(tmp):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    side = rng.uniform(1000, 2000, (32, 1)).astype(np.float32)
    np.savez(tmp / "calib.npz", x=x, side=side)
    opts = resolve(make_options("int8-static", calibration=str(tmp / "calib.npz")), load_profile("generic-x86-64"))
    bench = make_bench(_model(), 0.0, None, str(tmp / "calib.npz"), opts, True, str(tmp), None)
    assert {"first", "relu", "concat", "head"} <= set(bench.candidates)
    samples = Samples([{"x": x[i:i + 1], "side": side[i:i + 1]} for i in range(32)], None, str(tmp / "calib.npz"))
    ranked = probe.rank(bench, samples)
    errors = {r["node"]: r["error"] for r in ranked}
    print(errors)
    # the relu output (0 to ~3) concatenated with values near 2,000: one uint8 scale of ~8 rounds it to 0
    assert {r["node"] for r in ranked[:2]} == {"concat", "head"} and errors["concat"] > 0.5
    assert errors["first"] < 0.05 and errors["relu"] < 0.05
    assert sensitivity.method(bench) == "exact"   # a model this small is measured exactly in a search
