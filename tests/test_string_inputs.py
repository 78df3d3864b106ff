"""Models that take text as a string tensor (a file-type or intent classifier's front end): Session.run takes
numpy str arrays of any width and object arrays of Python strings, as onnxruntime does, and refuses numbers
for a string input with a typed error."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgepack
from edgepack.runtime import load
from edgepack.runtime.errors import InputError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """text [N] -> Identity -> same text; x [N, 4] -> MatMul w -> y [N, 2]."""
    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), "w")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"]), helper.make_node("MatMul", ["x", "w"], ["y"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["n"]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out = tmp_path_factory.mktemp("strings") / "strings.edgepack"
    edgepack.package(model, output=out, example_inputs={"text": np.array(["a", "bc"]),
                                                       "x": np.ones((2, 4), np.float32)})
    return out


@pytest.mark.parametrize("text", [np.array(["a", "longer text"]), np.array(["x", "y"], dtype=object),
                                  ["plain", "list"]], ids=["numpy-str", "object", "list"])
def test_string_inputs_run(bundle, text):
    x = np.ones((2, 4), np.float32)
    out = load(bundle).run({"text": text, "x": x})
    assert list(out["echo"]) == list(text)
    assert np.array_equal(out["y"], x @ np.arange(8, dtype=np.float32).reshape(4, 2))


def test_numbers_for_a_string_input_are_refused(bundle):
    with pytest.raises(InputError, match="'text' must be strings"):
        load(bundle).run({"text": np.zeros(2, np.float32), "x": np.ones((2, 4), np.float32)})
