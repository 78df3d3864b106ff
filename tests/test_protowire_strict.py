"""The graph walker reads only the canonical encoding, walks every place a tensor can sit, and bounds its
work (issue 19). Each test pins one check: removing it (a mutant of runtime/protowire.py) fails a test here.
Models are written byte by byte (tests/wire_encoding.py), as a hostile writer would."""

import pytest

from edgepack.runtime.protowire import _MAX_DEPTH, ProtoError, scan_model

import wire_encoding as w

FLOATS = bytes(16)  # 4 float32 zeros


def _model(graph: bytes) -> bytes:
    return w.vi(1, 8) + w.ld(7, graph)


def _init(tensor: bytes) -> bytes:
    return _model(w.ld(5, tensor))


def _sparse(values: bytes, indices: bytes) -> bytes:
    return w.ld(1, values) + w.ld(2, indices) + w.vi(3, 10)


def _constant(attribute: bytes) -> bytes:
    return _model(w.ld(1, w.ld(2, b"out") + w.ld(4, b"Constant") + w.ld(5, attribute)))


# --- every place a tensor can sit -------------------------------------------------------------------------

def test_sparse_initializers_yield_values_and_indices():
    values = w.tensor("v", [2], body=w.ld(9, bytes(8)))
    indices = w.tensor("i", [2], w.INT64, body=w.ld(9, bytes(16)))
    records = scan_model(_model(w.ld(15, _sparse(values, indices))))
    assert [(r.label, r.dims, r.raw_length) for r in records] == [("v", [2], 8), ("i", [2], 16)]


@pytest.mark.parametrize("field", [22, 23], ids=["sparse_tensor", "sparse_tensors"])
def test_sparse_attribute_tensors_yield_values_and_indices(field):
    values = w.tensor("v", [2], body=w.ld(9, bytes(8)))
    indices = w.tensor("i", [2], w.INT64, body=w.ld(9, bytes(16)))
    attribute = w.ld(1, b"sparse_value") + w.ld(field, _sparse(values, indices)) + w.vi(20, 11 + (field == 23))
    records = scan_model(_constant(attribute))
    assert sorted(r.raw_length for r in records) == [8, 16]


def test_raw_data_hidden_in_sparse_indices_is_refused_in_a_bundle():
    indices = w.tensor("i", [2], w.INT64, body=w.ld(9, bytes(16)))
    attribute = w.ld(1, b"sparse_value") + w.ld(23, _sparse(w.tensor("v", [2]), indices)) + w.vi(20, 12)
    with pytest.raises(ProtoError, match="16 bytes of raw data that no manifest entry lists"):
        scan_model(_constant(attribute), spliced_only=True)


def test_function_attribute_defaults_are_walked():
    default = w.tensor("d", [4], body=w.ld(9, FLOATS))
    function = w.ld(1, b"F") + w.ld(11, w.ld(1, b"value") + w.ld(5, default) + w.vi(20, 4))
    records = scan_model(w.vi(1, 8) + w.ld(25, function))
    assert [(r.label, r.raw_length, r.main_initializer) for r in records] == [("d", 16, False)]


def test_only_main_graph_initializers_may_refer_to_external_data():
    entry = w.ld(13, w.ld(1, b"location") + w.ld(2, b"edgepack:w")) + w.vi(14, 1)
    main = scan_model(_init(w.tensor("w", [4], body=entry)))
    assert main[0].main_initializer and main[0].external == {"location": "edgepack:w"}
    nested = w.ld(1, w.ld(4, b"If") + w.ld(5, w.ld(1, b"then_branch") + w.ld(6, w.ld(5, w.tensor("w", [4],
                                                                                                  body=entry)))))
    with pytest.raises(ProtoError, match="refers to external data"):
        scan_model(_model(nested))
    with pytest.raises(ProtoError, match="refers to external data"):  # data_location alone, too
        scan_model(_model(w.ld(1, w.ld(5, w.ld(1, b"value") + w.ld(5, w.tensor("c", [4], body=w.vi(14, 1)))))))


# --- canonical encoding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, why", [
    (w.vi(1, 8, width=2), "padded"),                                    # a tag with a padding byte
    (w.tag(1, 0) + w.varint(8, width=3), "padded"),                     # a value with two
    (w.vi(1, 8, high=1 << 32), "wider than 32 bits"),                   # a tag's bit 32
    (w.vi(1, 8, high=1 << 35), "wider than 32 bits"),
    (w.tag(1, 0) + b"\xff" * 9 + b"\x02", "bits past the 64th"),        # a 10th byte over 1
    (w.tag(1, 0) + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x00\x00", "field number 0"),
    (w.vi(0, 1), "field number 0"),
    (w.tag(1, 1) + bytes(8), "not one ModelProto holds"),                 # fixed64: no such field here
    (w.vi(3, 1), "not one ModelProto holds"),                           # a string field sent as a varint
    (w.vi(99, 1), "not one ModelProto holds"),                          # an unknown field
    (w.vi(1, 8) + w.vi(1, 8), "appears twice"),                         # a singular field twice
    (w.ld(7, b"") + w.ld(7, b""), "appears twice"),
])
def test_non_canonical_encodings_are_refused(data, why):
    with pytest.raises(ProtoError, match=why):
        scan_model(data)


@pytest.mark.parametrize("body, why", [
    (w.tag(4, 1) + bytes(8), "not one TensorProto holds"),                # fixed64 in a tensor
    (w.vi(5, 1), "not one TensorProto holds"),                            # int32_data as an unpacked varint
    (w.vi(7, 666), "not one TensorProto holds"),                          # int64_data likewise
    (w.ld(1, w.varint(4)), "not one TensorProto holds"),                  # packed dims (proto2: unpacked)
    (w.ld(4, bytes(6)), "not whole numbers"),                             # float_data of 6 bytes
    (w.ld(10, bytes(12)), "not whole numbers"),                           # double_data of 12 bytes
    (w.vi(2, 29), "out of range"),                                        # data_type past the enum
    (w.vi(2, 2 ** 32 + 1), "out of range"),                               # read as 1 by protobuf
    (w.vi(14, 2), "out of range"),                                        # data_location
    (w.ld(3, b""), "not one TensorProto holds"),                          # segment
    (w.ld(8, b"\xff\xfe"), "invalid UTF-8"),                              # name
    (w.ld(9, FLOATS) + w.ld(9, FLOATS), "appears twice"),                 # raw_data twice
])
def test_non_canonical_tensors_are_refused(body, why):
    with pytest.raises(ProtoError, match=why):
        scan_model(_init(body + w.vi(1, 4)))


@pytest.mark.parametrize("node", [w.ld(2, b"\xc3\x28"), w.ld(3, b"\xed\xa0\x80"),
                                  w.ld(5, w.ld(1, b"\xff"))], ids=["output", "name", "attribute name"])
def test_invalid_utf8_names_are_refused(node):
    with pytest.raises(ProtoError, match="invalid UTF-8"):
        scan_model(_model(w.ld(1, node)))


def test_the_enum_ranges_reach_their_last_value():
    assert scan_model(_init(w.tensor("t", [4], data_type=28)))[0].data_type == 28
    assert scan_model(_init(w.tensor("t", [4], body=w.vi(14, 0))))[0].data_location == 0
    attribute = w.ld(1, b"a") + w.vi(20, 14)
    assert scan_model(_constant(attribute)) == []
    with pytest.raises(ProtoError, match="out of range"):
        scan_model(_constant(w.ld(1, b"a") + w.vi(20, 15)))


# --- lengths ---------------------------------------------------------------------------------------------

def test_a_field_overrunning_its_parent_is_refused():
    node = w.ld(1, b"input") + w.ld(4, b"Relu")
    graph = w.tag(1, 2) + w.varint(len(node) - 3) + node  # the node ends inside its op_type
    with pytest.raises(ProtoError, match="overruns its NodeProto"):
        scan_model(_model(graph))


def test_a_message_overrunning_its_parent_is_refused():
    tensor = w.vi(1, 4) + w.vi(2, 1)
    # the tensor's length takes in the tag and length of the name after it, not the name itself
    graph = w.tag(5, 2) + w.varint(len(tensor) + 2) + tensor + w.ld(8, b"abc")
    with pytest.raises(ProtoError, match="overruns its TensorProto"):
        scan_model(_model(graph))


def test_a_field_running_past_the_end_is_refused():
    with pytest.raises(ProtoError, match="runs past the end"):
        scan_model(w.vi(1, 8) + w.tag(2, 2) + w.varint(50) + b"abc")


def test_a_splice_must_be_a_raw_data_payload_of_its_length():
    tensor = w.tensor("t", [4], body=w.ld(9, FLOATS))
    model = _init(tensor)
    at = model.index(FLOATS)
    skeleton = model[:at] + model[at + 16:]
    assert scan_model(skeleton, [(at, 16)], spliced_only=True)[0].splice == 0
    with pytest.raises(ProtoError, match="16 bytes in the graph but 12"):
        scan_model(skeleton, [(at, 12)])
    name = skeleton.index(w.ld(8, b"t")) + 2
    with pytest.raises(ProtoError, match="not a tensor's raw_data"):  # a splice on the tensor's name
        scan_model(skeleton, [(at, 16), (name, 1)])
    with pytest.raises(ProtoError, match="not a tensor's raw_data"):  # a splice past the end
        scan_model(skeleton, [(at, 16), (len(skeleton), 0)])


# --- bounds: at the limit, and one past it ---------------------------------------------------------------

def _nested(levels: int) -> bytes:
    """A ModelProto whose graph nests `levels` more graphs (node -> attribute -> g)."""
    graph = b""
    for _ in range(levels):
        graph = w.ld(1, w.ld(5, w.ld(6, graph)))
    return _model(graph)


def test_nesting_is_allowed_up_to_the_limit_and_refused_past_it():
    # each level is three messages deep (node, attribute, graph); the model and its graph add two
    levels = (_MAX_DEPTH - 1) // 3
    scan_model(_nested(levels))
    with pytest.raises(ProtoError, match="nested deeper"):
        scan_model(_nested(levels + 1))


def test_the_field_budget_is_exact():
    fields = 1 + 1 + 1 + 100  # ir_version, graph, node, and 100 inputs
    model = w.vi(1, 8) + w.ld(7, w.ld(1, w.ld(1, b"") * 100))
    scan_model(model, max_fields=fields)
    with pytest.raises(ProtoError, match="more protobuf fields"):
        scan_model(model, max_fields=fields - 1)


def test_a_ten_byte_varint_is_minimal_for_a_negative_value():
    """int64 -1 is ten bytes, the last 0x01: canonical (a dim of -1, as some exporters write)."""
    record = scan_model(_init(w.vi(1, 2 ** 64 - 1) + w.vi(2, 1)))[0]
    assert record.dims == [-1]


def test_a_truncated_fixed32_is_refused():
    attribute = w.ld(1, b"alpha") + w.tag(2, 5) + b"\x00\x00"   # AttributeProto.f, 2 of its 4 bytes
    node = w.ld(4, b"LeakyRelu") + w.tag(5, 2) + w.varint(len(attribute) + 2) + attribute
    graph = w.tag(1, 2) + w.varint(len(node)) + node
    model = w.vi(1, 8) + w.tag(7, 2) + w.varint(len(graph)) + graph
    with pytest.raises(ProtoError, match="runs past the end"):
        scan_model(model)


def test_a_sub_message_reaching_past_its_parent_is_refused():
    """A node whose length takes in the 3 bytes after its graph (a valid op_type field there)."""
    node = w.ld(1, b"in")
    graph = w.tag(1, 2) + w.varint(len(node) + 3) + node
    model = w.vi(1, 8) + w.tag(7, 2) + w.varint(len(graph)) + graph + w.ld(4, b"R")
    with pytest.raises(ProtoError, match="overruns its GraphProto"):
        scan_model(model)
