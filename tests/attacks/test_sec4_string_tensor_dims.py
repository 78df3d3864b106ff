"""Security review 4: a string tensor's dims were taken at their word. onnxruntime allocates and constructs
one std::string per element its dims declare before it compares them with the strings the tensor holds (for
numeric types it compares first), so a 2.6 KB bundle whose string initializer declared 10**8 elements and
held none built its session to a peak of 3.1 GB in 11.5 s before the SessionError (2**28 elements: 8.6 GB),
under the untrusted defaults; a Constant holding such a tensor did the same. The graph walk now refuses a
string tensor whose dims do not count its strings, which onnxruntime refuses anyway, after that allocation."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import bundles
from conftest import peak_mb_refusing, write
from edgepack.runtime import load
from edgepack.runtime.errors import InvalidGraph


def _bundle(tmp, mlp_bundle, dims, strings, as_constant):
    big = TensorProto(name="big", data_type=TensorProto.STRING, dims=dims, string_data=strings)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, None)
    if as_constant:
        nodes, inits = [helper.make_node("Constant", [], ["big"], value=big)], []
    else:
        nodes, inits = [], [big]
    nodes.append(helper.make_node("Identity", ["big"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = bundles.graph_only(mlp_bundle[0], model, codec="raw")
    return write(tmp, data, f"strings-{as_constant}.edgepack"), len(data)


@pytest.mark.parametrize("as_constant", [False, True], ids=["initializer", "Constant value"])
def test_a_string_tensor_declaring_more_elements_than_it_holds_is_refused(tmp, mlp_bundle, as_constant):
    path, size = _bundle(tmp, mlp_bundle, [10 ** 8], [], as_constant)
    assert size < 4096
    with pytest.raises(InvalidGraph, match="dims declare 100000000 elements but it holds 0 strings"):
        load(path)
    assert peak_mb_refusing(f"rt.load({str(path)!r})", "InvalidGraph") < 400


@pytest.mark.parametrize("dims, strings", [([3], [b"a", b"b"]), ([1], [b"a", b"b"]), ([2, 1 << 62, 1 << 62], [b"a"])])
def test_dims_and_strings_must_agree(tmp, mlp_bundle, dims, strings):
    path, _ = _bundle(tmp, mlp_bundle, dims, strings, False)
    with pytest.raises(InvalidGraph, match="string tensor"):
        load(path)


@pytest.mark.parametrize("as_constant", [False, True], ids=["initializer", "Constant value"])
def test_a_string_tensor_whose_dims_count_its_strings_loads(tmp, mlp_bundle, as_constant):
    path, _ = _bundle(tmp, mlp_bundle, [2, 2], [b"a", b"b", b"", b"dd"], as_constant)
    out = load(path).run({"x": np.zeros(1, np.float32)})["y"]
    assert out.tolist() == [[b"a", b"b"], [b"", b"dd"]] or out.tolist() == [["a", "b"], ["", "dd"]]


def _scanned(dims, strings):
    from edgepack.runtime.protowire import scan_model

    t = TensorProto(name="s", data_type=TensorProto.STRING, dims=dims, string_data=strings)
    g = helper.make_graph([helper.make_node("Identity", ["s"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.STRING, None)], initializer=[t])
    return scan_model(helper.make_model(g).SerializeToString())


def test_an_empty_string_tensor_is_counted_right():
    """Dims with a 0 declare no elements (not a negative count): an empty string tensor is valid ONNX."""
    (record,) = [r for r in _scanned([0], []) if r.name == "s"]
    assert record.strings == 0 and record.dims == [0]
    (record,) = [r for r in _scanned([3, 0], []) if r.name == "s"]
    assert record.dims == [3, 0]


def test_a_count_of_2_64_elements_or_more_is_named_so():
    from edgepack.runtime.protowire import ProtoError

    with pytest.raises(ProtoError, match="its dims declare 2\\*\\*64 or more elements but it holds 0 strings"):
        _scanned([1 << 32, 1 << 32], [])
    with pytest.raises(ProtoError, match=f"its dims declare {(1 << 32) * ((1 << 32) - 1)} elements"):
        _scanned([1 << 32, (1 << 32) - 1], [])


@pytest.mark.parametrize("dims", [[0, 3], [3, 0], [0]])
def test_a_zero_dimension_anywhere_declares_no_elements(dims):
    (record,) = [r for r in _scanned(dims, []) if r.name == "s"]
    assert record.dims == dims


def test_two_negative_dimensions_do_not_make_a_positive_count():
    from edgepack.runtime.protowire import ProtoError

    with pytest.raises(ProtoError, match="its dims declare negative elements but it holds 1 strings"):
        _scanned([-1, -1], [b"a"])
    with pytest.raises(ProtoError, match="its dims declare negative elements but it holds 0 strings"):
        _scanned([-1, 0], [])  # a zero after a negative dimension does not make the count 0


def test_zero_elements_are_named_as_zero():
    from edgepack.runtime.protowire import ProtoError

    with pytest.raises(ProtoError, match="its dims declare 0 elements but it holds 1 strings"):
        _scanned([0], [b"a"])


def test_a_long_name_is_quoted_to_200_characters():
    from edgepack.runtime.protowire import ProtoError, scan_model

    name = "s" * 150 + "S" * 150
    t = TensorProto(name=name, data_type=TensorProto.STRING, dims=[2], string_data=[b"a"])
    g = helper.make_graph([helper.make_node("Identity", [name], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.STRING, None)], initializer=[t])
    with pytest.raises(ProtoError) as e:
        scan_model(helper.make_model(g).SerializeToString())
    assert str(e.value) == f"string tensor {name[:200]!r}: its dims declare 2 elements but it holds 1 strings"


def test_each_string_counts_ten_8_byte_units():
    """What limits.check_dense charges per string (protorecords.STRING_UNITS: some 80 bytes, measured as +700 MB
    for 7.9 million empty strings)."""
    from edgepack.runtime.protowire import GraphNames, scan_model

    t = TensorProto(name="s", data_type=TensorProto.STRING, dims=[3], string_data=[b"", b"a", b"bc"])
    g = helper.make_graph([helper.make_node("Identity", ["s"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.STRING, None)], initializer=[t])
    names = GraphNames()
    scan_model(helper.make_model(g).SerializeToString(), names=names)
    assert names.held == 3 * 10
