"""Finding F9 of the second security review: the mapped layout's graph check missed a Constant node whose
value is in value_floats (no TensorProto) and whose output is named like a mapped tensor: onnxruntime then
used the Constant's numbers instead of the hashed weights mapped from the bundle."""

import numpy as np
import pytest
from edgepack.packager import package
from edgepack.runtime import open_bundle
from edgepack.runtime.errors import InvalidGraph
from edgepack.runtime.mapped import check_graph
from onnx import TensorProto, helper, numpy_helper


@pytest.mark.parametrize("attribute", ["value_floats", "value_float"])
def test_a_constant_output_named_like_a_mapped_tensor_is_refused(tmp_path, attribute):
    weight = numpy_helper.from_array(np.ones((4096,), np.float32), "wq")
    value = [5.0] * 4 if attribute == "value_floats" else 5.0
    nodes = [helper.make_node("Constant", [], ["zz"], **{attribute: value}),
             helper.make_node("Add", ["x", "wq"], ["y"]), helper.make_node("Identity", ["zz"], ["y2"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096]),
                               helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)], [weight])
    path = tmp_path / "cn.edgepack"
    package(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path, layout="mapped")
    with open_bundle(path) as b:
        mapped = list(b.manifest.mapped)
        assert [t.name for t in mapped] == ["wq"]
        inline = sorted((t for t in b.manifest.tensors if t.binding == "inline"), key=lambda t: t.splice or 0)
        stored = bytes(b.read_graph())
        check_graph(b, stored, inline, mapped)  # the graph as packaged passes
        assert stored.count(b"zz") == 2
        hostile = stored.replace(b"zz", b"wq")  # same length: splice offsets stay right
        with pytest.raises(InvalidGraph, match="mapped tensor's name"):
            check_graph(b, hostile, inline, mapped)
