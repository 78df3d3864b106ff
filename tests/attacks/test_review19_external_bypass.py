"""Issue 19, finding 1: external-data references hidden where the old graph walker did not look.

protobuf (as onnxruntime uses it) reads a 5-byte tag with bits above the 32nd set as the field those low
bits name, and an enum varint of 2**32 + 1 as 1 (EXTERNAL); the old walker skipped the first as an unknown
field and compared the second with 1. It never visited FunctionProto.attribute_proto (field 11) either,
whose tensors onnxruntime inlines. Each is now refused before onnxruntime is handed anything."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import AttributeProto

from edgepack.runtime import errors as E
from edgepack.runtime import load

import bundles
import wire_encoding as wire
from conftest import write

HIGH = 1 << 32  # a tag bit protobuf's 32-bit tag reader drops


def _entry(location: bytes) -> bytes:
    return wire.ld(1, b"location") + wire.ld(2, location)


def _constant_then_add(tensor_body: bytes) -> bytes:
    """y = x + c, c a Constant whose value tensor holds `tensor_body` (and no data)."""
    value = wire.tensor("c", [4], body=tensor_body)
    constant = wire.node("Constant", [], ["c"], [wire.attribute("value", AttributeProto.TENSOR, wire.ld(5, value))])
    return wire.model([constant, wire.node("Add", ["x", "c"], ["y"])])


def _function_default(location: bytes) -> bytes:
    """y = F(x), a local function F whose Constant takes its value from F's attribute default, a tensor
    with external data."""
    default = wire.tensor("d", [4], body=wire.ld(13, _entry(location)) + wire.vi(14, 1))
    constant = (wire.ld(2, b"k") + wire.ld(4, b"Constant")
                + wire.ld(5, wire.ld(1, b"value") + wire.vi(20, AttributeProto.TENSOR) + wire.ld(21, b"value")))
    function = (wire.ld(1, b"F") + wire.ld(4, b"a") + wire.ld(5, b"b")
                + wire.ld(7, constant) + wire.ld(7, wire.node("Add", ["a", "k"], ["b"]))
                + wire.ld(9, wire.ld(1, b"") + wire.vi(2, 17)) + wire.ld(10, b"local")
                + wire.ld(11, wire.ld(1, b"value") + wire.ld(5, default) + wire.vi(20, AttributeProto.TENSOR)))
    call = wire.ld(1, b"x") + wire.ld(2, b"y") + wire.ld(4, b"F") + wire.ld(7, b"local")
    return wire.model([call], functions=[function])


CASES = {
    "external_data and data_location under 5-byte tags": lambda loc: _constant_then_add(
        wire.ld(13, _entry(loc), high=HIGH) + wire.vi(14, 1, high=HIGH)),
    "data_location 2**32 + 1 and external_data under a 5-byte tag": lambda loc: _constant_then_add(
        wire.vi(14, 2 ** 32 + 1) + wire.ld(13, _entry(loc), high=HIGH)),
    "a FunctionProto attribute default": _function_default,
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("location", [b"/etc/passwd", b"../../../../etc/passwd", b"weights.bin"])
def test_a_hidden_external_reference_is_refused_before_onnxruntime(tmp, mlp_bundle, case, location):
    graph = CASES[case](location)
    manifest, _, _ = bundles.decoded(write(tmp, mlp_bundle[0], "src.edgepack"))
    path = write(tmp, wire.bundle(manifest, graph))
    with pytest.raises(E.InvalidGraph, match="wider than 32 bits|out of range|refers to external data"):
        load(path)


def test_onnxruntime_does_read_the_hidden_reference(tmp_path):
    """The attack is real: given these bytes itself, onnxruntime goes looking for the file (and refuses it
    only by its own path checks, which edgepack no longer relies on)."""
    (tmp_path / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model = tmp_path / "m.onnx"
    model.write_bytes(CASES["external_data and data_location under 5-byte tags"](b"weights.bin"))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": np.zeros(4, np.float32)})[0]
    np.testing.assert_array_equal(got, [0, 1, 2, 3])  # c came from weights.bin
