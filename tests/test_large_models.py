"""Models over protobuf's 2 GB limit: packaged from external data files, loaded bit-identically."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.runtime import load, open_bundle


@pytest.mark.slow
def test_model_over_2gb(tmp_path):
    d, layers = 8192, 9   # 9 x 256 MiB of fp32 weights: 2.25 GiB
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = rng.standard_normal((d, d), dtype=np.float32) * np.float32(1 / np.sqrt(d))
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        x = f"m{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, d])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "big.onnx", save_as_external_data=True, location="big.data")
    del model, inits, graph
    feeds = {"x": rng.standard_normal((1, d), dtype=np.float32)}
    expected = ort.InferenceSession(str(tmp_path / "big.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]

    edgepack.package(tmp_path / "big.onnx", output=tmp_path / "big.edgepack", level=1)
    with open_bundle(tmp_path / "big.edgepack") as b:
        bindings = sorted(t.binding for t in b.manifest.tensors)
    assert "external" in bindings and "inline" in bindings
    out = load(tmp_path / "big.edgepack").run(feeds)[x]
    assert np.array_equal(out, expected)
