"""Security review 5: the calibration session adds intermediate outputs to the caller's model only while it is
serialized (packager/quantize/lm_data._session). Appending them was outside the try that removes them, and
protobuf's extend keeps what it appended before a failure (MemoryError, KeyboardInterrupt): the caller's model
was left with extra graph outputs, which then went into the bundle."""

import onnx
import pytest
from onnx import TensorProto, helper

from edgepack.packager.quantize import lm_data


def _model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


def test_a_failure_while_adding_outputs_leaves_the_model_as_it_was(monkeypatch):
    model = _model()
    before = model.SerializeToString()
    real, made = helper.make_empty_tensor_value_info, []

    def failing(name):
        if made:
            raise MemoryError("second output")
        made.append(name)
        return real(name)

    monkeypatch.setattr(lm_data.helper, "make_empty_tensor_value_info", failing)
    with pytest.raises(MemoryError):
        lm_data._session(model, ["x", "h"])
    assert model.SerializeToString() == before


def test_the_session_returns_the_outputs_and_leaves_the_model_as_it_was():
    model = _model()
    before = model.SerializeToString()
    session = lm_data._session(model, ["h", "h", "y"])
    assert [o.name for o in session.get_outputs()] == ["y", "h"]
    assert model.SerializeToString() == before
