"""Issue 19: runtime/graphcheck.py holds every TensorProto of the stored graph against the manifest. Each case
here is a hand-built bundle (fresh hashes, as a hostile writer makes them) that the check must refuse before
onnxruntime sees it, with the message that names what is wrong: an external tensor the graph never binds,
one bound twice, half an external reference (a location without data_location EXTERNAL, or the reverse), a
tensor whose dtype or shape is not the manifest's, raw bytes in the graph that no manifest entry lists, and a
splice at byte 0. The first test is the control: the same construction, done right, loads and runs."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.runtime import errors as E
from edgepack.runtime import load

import bundles
import wire_encoding as wire
from conftest import write

W = np.array([1, 2, 3, 4], np.float32)
H = np.full(4, 666, np.float32)


@pytest.fixture(scope="module")
def base(mlp_bundle):
    """The manifest of a valid bundle (its header fields), for hand-built bundles."""
    return bundles.parts(mlp_bundle[0])[2]


def _external(name: str, array=W, location: str | None = None, data_location: bool = True) -> TensorProto:
    """An initializer bound externally: no data of its own, its location `edgepack:<name>`."""
    t = numpy_helper.from_array(array, name)
    t.ClearField("raw_data")
    if data_location:
        t.data_location = TensorProto.EXTERNAL
    if location is not None:
        entry = t.external_data.add()
        entry.key, entry.value = "location", location
    return t


def _model(inits, nodes=None) -> bytes:
    """y = x * W (x, y: float[4]), over the initializers `inits`."""
    nodes = nodes or [helper.make_node("Mul", ["x", "W"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _ext_entry(name: str, dtype: str = "float32", shape=(4,)) -> dict:
    return {"name": name, "dtype": dtype, "shape": list(shape), "binding": "external"}


def _bundle(tmp, base, graph: bytes, tensors) -> str:
    return write(tmp, wire.bundle(base, graph, tensors))


def _refused(path, message: str) -> None:
    with pytest.raises(E.InvalidGraph, match=re.escape(message)):
        load(path)


def test_an_external_binding_done_right_loads(tmp, base):
    """The control for the cases below: W bound externally to its own manifest entry loads and runs."""
    path = _bundle(tmp, base, _model([_external("W", location="edgepack:W")]), [(_ext_entry("W"), W.tobytes())])
    np.testing.assert_array_equal(load(path).run({"x": np.ones(4, np.float32)})["y"], W)


def test_external_tensors_the_graph_does_not_use_are_refused(tmp, base):
    """Seven manifest tensors bound externally that no initializer binds: the message names the first five."""
    unused = [(_ext_entry(f"E{i}"), H.tobytes()) for i in range(7)]
    path = _bundle(tmp, base, _model([_external("W", location="edgepack:W")]),
                   [(_ext_entry("W"), W.tobytes()), *unused])
    _refused(path, "external tensors ['E0', 'E1', 'E2', 'E3', 'E4'] are not used by the graph")


def test_one_external_tensor_bound_by_two_initializers_is_refused(tmp, base):
    graph = _model([_external("W", location="edgepack:W"), _external("W", location="edgepack:W")])
    _refused(_bundle(tmp, base, graph, [(_ext_entry("W"), W.tobytes())]), "tensor 'W' is bound twice")


def test_a_location_without_data_location_external_is_refused(tmp, base):
    """external_data names the bundle's own tensor, but data_location is DEFAULT: not a binding load() makes."""
    graph = _model([_external("W", location="edgepack:W", data_location=False)])
    _refused(_bundle(tmp, base, graph, [(_ext_entry("W"), W.tobytes())]),
             "tensor 'W' refers to external data 'edgepack:W'; a bundle must be self-contained")


def test_data_location_external_without_a_location_is_refused(tmp, base):
    graph = _model([_external("W")])
    _refused(_bundle(tmp, base, graph, [(_ext_entry("W"), W.tobytes())]),
             "tensor 'W' refers to external data ''; a bundle must be self-contained")


def test_a_long_location_is_quoted_to_200_characters(tmp, base):
    location = "edgepack:" + "".join(chr(ord("a") + i % 26) for i in range(400))
    graph = _model([_external("W", location=location)])
    _refused(_bundle(tmp, base, graph, [(_ext_entry("W"), W.tobytes())]),
             f"tensor 'W' refers to external data {location[:200]!r}; a bundle must be self-contained")


@pytest.mark.parametrize("dtype, shape", [("float32", (2, 2)), ("int32", (4,))], ids=["shape", "dtype"])
def test_an_external_tensor_of_another_dtype_or_shape_is_refused(tmp, base, dtype, shape):
    """The manifest's W differs from the graph's float[4] in one of dtype and shape only (same byte count)."""
    graph = _model([_external("W", location="edgepack:W")])
    _refused(_bundle(tmp, base, graph, [(_ext_entry("W", dtype, shape), W.tobytes())]),
             f"tensor 'W' is {dtype}{list(shape)} in the manifest but not in the graph")


@pytest.mark.parametrize("dtype, shape", [("float32", (2, 2)), ("int32", (4,))], ids=["shape", "dtype"])
def test_an_inline_tensor_of_another_dtype_or_shape_is_refused(tmp, base, dtype, shape):
    graph, splice = wire.splice_cut(_model([numpy_helper.from_array(W, "W")]), W.tobytes())
    entry = {"name": "W", "dtype": dtype, "shape": list(shape), "binding": "inline", "splice": splice}
    _refused(_bundle(tmp, base, graph, [(entry, W.tobytes())]),
             f"tensor 'W' is {dtype}{list(shape)} in the manifest but not in the graph")


def test_raw_bytes_in_the_graph_that_no_manifest_entry_lists_are_refused(tmp, base):
    """W is spliced in as usual; H keeps its raw_data in the graph itself, and onnxruntime would add it."""
    nodes = [helper.make_node("Mul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "H"], ["y"])]
    serialized = _model([numpy_helper.from_array(W, "W"), numpy_helper.from_array(H, "H")], nodes)
    graph, splice = wire.splice_cut(serialized, W.tobytes())
    entry = {"name": "W", "dtype": "float32", "shape": [4], "binding": "inline", "splice": splice}
    _refused(_bundle(tmp, base, graph, [(entry, W.tobytes())]),
             "tensor 'H' holds 16 bytes of raw data that no manifest entry lists")


def test_a_splice_at_byte_0_is_refused_at_byte_0(tmp, base):
    """An empty inline tensor spliced in at byte 0, where no raw_data can begin (a ModelProto starts with a
    tag): the walk reads the whole graph (W in float_data) and then names the splice it never met, at the
    manifest's offset."""
    graph = _model([helper.make_tensor("W", TensorProto.FLOAT, [4], W.tolist())])
    entry = {"name": "Z", "dtype": "float32", "shape": [0], "binding": "inline", "splice": 0}
    _refused(_bundle(tmp, base, graph, [(entry, b"")]), "a tensor is spliced in at byte 0, which is not")


def test_an_external_tensor_with_no_data_type_is_refused(tmp, base):
    """A TensorProto that leaves data_type out is UNDEFINED (0), not the manifest's float32."""
    t = _external("W", location="edgepack:W")
    t.ClearField("data_type")
    _refused(_bundle(tmp, base, _model([t]), [(_ext_entry("W"), W.tobytes())]),
             "tensor 'W' is float32[4] in the manifest but not in the graph")
