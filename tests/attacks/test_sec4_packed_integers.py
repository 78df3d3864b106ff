"""Security review 4: integers stored in a TensorProto's packed varint fields (int64_data, uint64_data,
int32_data) take one byte each in the graph and eight (int64) in onnxruntime, twice over (protobuf's
repeated field, then the tensor). The load budget counted the graph's decoded bytes only, so a 12.9 KB bundle
whose graph held an initializer of 67,000,000 int64 zeros (67 MB decoded, within the 64 MiB floor) loaded at
+1.1 GB under the untrusted defaults. Packed varint bytes now count toward LoadLimits.expansion at
DENSE_ELEMENT_BYTES each, beside the sparse tensors made dense, in both layouts. So do strings (a tensor's
string_data, an attribute's strings): 7,900,000 empty strings, a 507 KB bundle, loaded at +700 MB in 18.7 s."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import bundles
from conftest import peak_mb_refusing, write
from edgepack.runtime import TRUSTED, load
from edgepack.runtime.errors import LoadBudgetExceeded


def _bundle(tmp, mlp_bundle, n: int, field: str = "int64_data", dtype=TensorProto.INT64):
    big = TensorProto(name="big", data_type=dtype, dims=[n])
    getattr(big, field).extend([1] * n)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", dtype, None)
    graph = helper.make_graph([helper.make_node("Identity", ["big"], ["y"])], "g", [x], [y], initializer=[big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = bundles.graph_only(mlp_bundle[0], model)
    return write(tmp, data, f"packed-{field}-{n}.edgepack"), len(data)


def test_packed_integers_beyond_the_budget_are_refused_before_onnxruntime(tmp, mlp_bundle):
    path, size = _bundle(tmp, mlp_bundle, 60_000_000)
    assert size < 16384
    want = r"sparse tensors made dense, packed integers and strings take 480000000 bytes.*expansion"
    with pytest.raises(LoadBudgetExceeded, match=want):
        load(path)
    assert peak_mb_refusing(f"rt.load({str(path)!r})", "LoadBudgetExceeded") < 400


@pytest.mark.parametrize("field, dtype", [("uint64_data", TensorProto.UINT64), ("int32_data", TensorProto.INT32)])
def test_every_packed_varint_field_counts(tmp, mlp_bundle, field, dtype):
    path, _ = _bundle(tmp, mlp_bundle, 9_000_000, field, dtype)
    with pytest.raises(LoadBudgetExceeded, match="packed integers and strings"):
        load(path)


def test_packed_integers_within_the_budget_load_and_a_trusted_load_lifts_it(tmp, mlp_bundle):
    path, _ = _bundle(tmp, mlp_bundle, 1000)
    assert load(path).run({"x": np.zeros(1, np.float32)})["y"].tolist() == [1] * 1000
    path, _ = _bundle(tmp, mlp_bundle, 9_000_000)
    with pytest.raises(LoadBudgetExceeded):
        load(path)
    assert load(path, limits=TRUSTED).run({"x": np.zeros(1, np.float32)})["y"].shape == (9_000_000,)


@pytest.mark.parametrize("as_attribute", [False, True], ids=["string_data", "Constant value_strings"])
def test_many_strings_count_too(tmp, mlp_bundle, as_attribute):
    """7,900,000 empty strings are 17 MB of graph (a 507 KB bundle, its file padded so that the field bound
    lets them through) and loaded at +700 MB: strings count STRING_UNITS units each."""
    from edgepack.runtime.protowire import STRING_UNITS

    n = 1_000_000
    y = helper.make_tensor_value_info("y", TensorProto.STRING, None)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    if as_attribute:
        nodes, inits = [helper.make_node("Constant", [], ["y"], value_strings=[""] * n)], []
    else:
        big = TensorProto(name="big", data_type=TensorProto.STRING, dims=[n], string_data=[b""] * n)
        nodes, inits = [helper.make_node("Identity", ["big"], ["y"])], [big]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = write(tmp, bundles.graph_only(mlp_bundle[0], model), "strings.edgepack")
    with pytest.raises(LoadBudgetExceeded, match=f"strings take {8 * STRING_UNITS * n} bytes"):
        load(path)
