"""A search quantizes one prepared model many times: no quantizer may change it. onnxruntime's 4-bit
quantizer rewrote the graph it was given, so after the first trial every MatMul was renamed and each trial
that kept a node in float failed ('exclude-nodes names [...] which the model does not have')."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager import modelfiles
from edgepack.packager.quantize.options import make_options, resolve
from edgepack.packager.quantize.run import prepare_once, quantize_prepared
from edgepack.runtime.profile import load_profile

pytestmark = pytest.mark.packager


def _mlp():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), f"w{i}") for i in range(2)]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"], name="mm0"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w1"], ["y"], name="mm1")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("mode", ["int4-weight", "int8-dynamic"])
def test_quantizing_a_prepared_model_leaves_it_as_it_was(mode):
    profile = load_profile("generic-x86-64")
    opts = resolve(make_options(mode), profile)
    with modelfiles.workdir() as folder:
        prepared = prepare_once(_mlp(), opts, folder)
        before = prepared.model.SerializeToString()
        first, _, summary = quantize_prepared(prepared, opts, folder)
        assert summary["quantized_total"] == 2
        assert prepared.model.SerializeToString() == before
        keep = resolve(make_options(mode, exclude_nodes=["mm1"]), profile)
        second, _, summary = quantize_prepared(prepared, keep, folder)   # a later trial keeping mm1 in float
        assert summary["quantized_total"] == 1 and "mm1" in {n.name for n in second.graph.node}
        onnx.checker.check_model(second)
