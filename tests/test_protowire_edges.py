"""The graph walker at its edges (issue 19's mutation test of runtime/protowire.py): a value exactly at a
limit and one past it, a stream ending on a field boundary inside a message, data fields running past the
graph, the smallest inline data, and the labels that name unnamed tensors in error messages. Each test fails
on a mutant of the walker that scripts/mutation made and the other tests let survive. Models are written
byte by byte (tests/wire_encoding.py)."""

import pytest

from edgepack.runtime.protowire import ProtoError, scan_model

import wire_encoding as w

UINT8 = 2


def _model(graph: bytes) -> bytes:
    return w.vi(1, 8) + w.ld(7, graph)


def _init(tensor: bytes) -> bytes:
    return _model(w.ld(5, tensor))


def _node(outputs: list[bytes], attribute: bytes, name: bytes = b"") -> bytes:
    return (b"".join(w.ld(2, o) for o in outputs) + (w.ld(3, name) if name else b"") + w.ld(4, b"Constant")
            + w.ld(5, attribute))


# --- limits: at the limit, and one past it ---------------------------------------------------------------

def test_a_tag_of_32_bits_is_read_and_one_of_33_is_refused():
    at_limit = w.vi(1, 8) + w.varint((1 << 32) - 1) + w.varint(0)  # field 2**29 - 1, wire type 7
    with pytest.raises(ProtoError, match="field 536870911 \\(wire type 7\\) at byte 2 is not one ModelProto"):
        scan_model(at_limit)
    with pytest.raises(ProtoError, match="tag at byte 2 is wider than 32 bits"):
        scan_model(w.vi(1, 8) + w.varint(1 << 32) + w.varint(0))


@pytest.mark.parametrize("value, dim", [((1 << 63) - 1, (1 << 63) - 1), (1 << 63, -(1 << 63)), (2 ** 64 - 2, -2)])
def test_dims_are_read_as_int64(value, dim):
    """A dim is an int64 written as a 64-bit varint: from 2**63 on, it is negative."""
    assert scan_model(_init(w.vi(1, value) + w.vi(2, 1)))[0].dims == [dim]


@pytest.mark.parametrize("body", [w.ld(9, b"\x07"), w.ld(5, w.varint(7)), w.ld(6, b"\x07")],
                         ids=["raw_data", "int32_data", "string_data"])
def test_one_byte_of_data_is_inline_data(body):
    """The smallest payload counts: graphcheck refuses an external binding whose tensor holds data."""
    record = scan_model(_init(w.tensor("t", [1], UINT8, body)))[0]
    assert record.inline_data
    assert not scan_model(_init(w.tensor("t", [0], UINT8)))[0].inline_data


# --- lengths ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("number, length", [(9, 100), (4, 64)], ids=["raw_data", "float_data"])
def test_a_data_field_running_past_the_graph_is_refused(number, length):
    """Its message is within the graph, its own length is not: refused at the field, not later."""
    tensor = w.vi(1, 4) + w.vi(2, 1) + w.tag(number, 2) + w.varint(length) + bytes(16)
    with pytest.raises(ProtoError, match=f"field of {length} bytes at byte [0-9]+ runs past the end of the graph"):
        scan_model(_init(tensor))


@pytest.mark.parametrize("number, width, dtype", [(4, 4, 1), (10, 8, 11)], ids=["float_data", "double_data"])
def test_packed_fixed_width_data_is_whole_numbers(number, width, dtype):
    """1, 2 and 3 numbers of a packed fixed-width field are read; one byte more or less than a whole number
    is refused."""
    for n in (1, 2, 3):
        assert scan_model(_init(w.tensor("t", [n], dtype, w.ld(number, bytes(width * n)))))[0].inline_data
    for length in (width - 1, width + 1, 2 * width + 1):
        with pytest.raises(ProtoError, match=f"packed field {number} at byte [0-9]+ is {length} bytes, not whole"):
            scan_model(_init(w.tensor("t", [1], dtype, w.ld(number, bytes(length)))))


def test_a_stream_ending_between_fields_of_an_open_message_is_truncated():
    """The graph says 5 bytes more than the stream holds, which ends just after a whole field: the next tag
    is missing, not a field that could be read."""
    graph = w.ld(1, w.ld(1, b"x"))
    model = w.vi(1, 8) + w.tag(7, 2) + w.varint(len(graph) + 5) + graph
    with pytest.raises(ProtoError, match=f"truncated varint at byte {len(model)}"):
        scan_model(model)


# --- labels: how an unnamed tensor is named in errors ----------------------------------------------------

def test_constant_values_are_labelled_by_their_own_node_output():
    value = w.ld(1, b"value") + w.ld(5, w.tensor("", [1], UINT8, w.ld(9, b"\x01"))) + w.vi(20, 4)
    graph = w.ld(1, _node([b"c1"], value)) + w.ld(1, _node([b"c2", b"c3"], value))
    assert [r.label for r in scan_model(_model(graph))] == ["c1", "c2"]


def test_sparse_tensors_in_an_attribute_are_labelled_by_the_node():
    """Values and indices sit in a SparseTensorProto, not directly in the attribute: named by the node's
    output, or its name when it has none, and by the attribute only when the node has neither."""
    sparse = (w.ld(1, w.tensor("", [1], UINT8, w.ld(9, b"\x01"))) + w.ld(2, w.tensor("", [1], 7, w.ld(9, bytes(8))))
              + w.vi(3, 4))
    attribute = w.ld(1, b"sparse_value") + w.ld(22, sparse) + w.vi(20, 11)
    assert [r.label for r in scan_model(_model(w.ld(1, _node([b"out"], attribute))))] == ["out", "out"]
    assert [r.label for r in scan_model(_model(w.ld(1, _node([], attribute, b"n1"))))] == ["n1", "n1"]
    assert [r.label for r in scan_model(_model(w.ld(1, _node([], attribute))))] == ["sparse_value"] * 2


def test_a_stream_ending_after_a_skipped_fields_tag_is_a_truncated_varint():
    """The length of a skipped field (ModelProto.producer_name here) is read past the end: a truncated varint,
    not a length of 127 running past the graph."""
    data = w.vi(1, 8) + bytes([2 << 3 | 2])
    with pytest.raises(ProtoError, match="truncated varint at byte 3"):
        scan_model(data)
