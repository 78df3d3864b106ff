"""Language-model packaging without whole-model copies: the quantizer's copy leaves out the weights it replaces,
and calibration sessions borrow the model instead of copying it (docs/LLM.md, "Packaging memory")."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepack.packager.quantize.llm import copy_without_initializers
from edgepack.packager.quantize.lm_data import _session


def _model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    b = numpy_helper.from_array(np.ones(4, np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, b],
                              doc_string="graph doc", value_info=[helper.make_tensor_value_info("m", 1, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test",
                              doc_string="model doc")
    helper.set_model_props(model, {"author": "edgepack tests"})
    return model


def test_copy_without_initializers_is_the_model_less_those_initializers():
    model = _model()
    expected = onnx.ModelProto()
    expected.CopyFrom(model)
    del expected.graph.initializer[0]  # "w"
    got = copy_without_initializers(model, {"w"})
    assert got == expected
    assert [t.name for t in model.graph.initializer] == ["w", "b"]  # the source keeps its weights
    assert copy_without_initializers(model, set()) == model


def test_a_calibration_session_returns_intermediates_and_leaves_the_model_as_it_was():
    model = _model()
    before = model.SerializeToString()
    session = _session(model, ["m", "m"])
    x = np.ones((1, 3), np.float32)
    m, y = session.run(["m", "y"], {"x": x})
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.allclose(m, x @ w) and np.allclose(y, x @ w + 1)
    assert model.SerializeToString() == before
