"""The ONNX messages that can carry tensor data, field by field, as protobuf writes them (onnx.proto).

runtime/protowire.py accepts a graph only in the canonical encoding that onnx's SerializeToString writes:
every field of these messages must be listed here, with this wire type, and a singular field may appear at
most once. Anything else (an unknown field, a field under a wire type protobuf would not write, a second
copy of a singular field) is a place where protobuf as onnxruntime uses it and this walker could read two
different models out of the same bytes, so the walker refuses it.

Messages that cannot hold a TensorProto (ValueInfoProto, TypeProto, OperatorSetIdProto, TensorAnnotation,
device configurations) are OPAQUE: their bytes are skipped whole.
"""

from __future__ import annotations

MODEL, GRAPH, NODE, ATTRIBUTE, TENSOR, SPARSE, FUNCTION, TRAINING, ENTRY = range(9)
KIND_NAMES = ("ModelProto", "GraphProto", "NodeProto", "AttributeProto", "TensorProto", "SparseTensorProto",
              "FunctionProto", "TrainingInfoProto", "StringStringEntryProto")

# How a field's payload is read (besides a sub-message kind, 0..8 above)
OPAQUE = 100      # a message that cannot hold tensors: length-delimited, skipped
STRING = 101      # length-delimited text (UTF-8 checked where the walker reads it)
BYTES = 102       # length-delimited bytes, skipped
VARINT = 103      # a varint (int32/int64/uint64)
ENUM = 104        # a varint enum value, range-checked (ENUM_RANGES)
FIXED32 = 105     # wire type 5 (float)
PACKED4 = 106     # packed fixed32 (float_data): length a multiple of 4
PACKED8 = 107     # packed fixed64 (double_data): length a multiple of 8
PACKEDVAR = 108   # packed varints (int32_data, int64_data, uint64_data)
RAW = 109         # TensorProto.raw_data

WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5
_WIRE_OF = {VARINT: WIRE_VARINT, ENUM: WIRE_VARINT, FIXED32: WIRE_FIXED32}

# kind -> {field number: (how it is read, repeated)}
_FIELDS: dict[int, dict[int, tuple[int, bool]]] = {
    MODEL: {1: (VARINT, False), 2: (STRING, False), 3: (STRING, False), 4: (STRING, False),
            5: (VARINT, False), 6: (STRING, False), 7: (GRAPH, False), 8: (OPAQUE, True), 14: (OPAQUE, True),
            20: (TRAINING, True), 25: (FUNCTION, True), 26: (OPAQUE, True)},
    GRAPH: {1: (NODE, True), 2: (STRING, False), 5: (TENSOR, True), 10: (STRING, False), 11: (OPAQUE, True),
            12: (OPAQUE, True), 13: (OPAQUE, True), 14: (OPAQUE, True), 15: (SPARSE, True), 16: (OPAQUE, True)},
    NODE: {1: (STRING, True), 2: (STRING, True), 3: (STRING, False), 4: (STRING, False), 5: (ATTRIBUTE, True),
           6: (STRING, False), 7: (STRING, False), 8: (STRING, False), 9: (OPAQUE, True), 10: (OPAQUE, True)},
    ATTRIBUTE: {1: (STRING, False), 2: (FIXED32, False), 3: (VARINT, False), 4: (BYTES, False),
                5: (TENSOR, False), 6: (GRAPH, False), 7: (FIXED32, True), 8: (VARINT, True), 9: (BYTES, True),
                10: (TENSOR, True), 11: (GRAPH, True), 13: (STRING, False), 14: (OPAQUE, False),
                15: (OPAQUE, True), 20: (ENUM, False), 21: (STRING, False), 22: (SPARSE, False),
                23: (SPARSE, True)},
    # TensorProto: no segment (3): onnxruntime refuses segmented tensors, so none is ever canonical here
    TENSOR: {1: (VARINT, True), 2: (ENUM, False), 4: (PACKED4, False), 5: (PACKEDVAR, False),
             6: (BYTES, True), 7: (PACKEDVAR, False), 8: (STRING, False), 9: (RAW, False), 10: (PACKED8, False),
             11: (PACKEDVAR, False), 12: (STRING, False), 13: (ENTRY, True), 14: (ENUM, False),
             16: (OPAQUE, True)},
    SPARSE: {1: (TENSOR, False), 2: (TENSOR, False), 3: (VARINT, True)},
    FUNCTION: {1: (STRING, False), 4: (STRING, True), 5: (STRING, True), 6: (STRING, True),
               7: (NODE, True), 8: (STRING, False), 9: (OPAQUE, True), 10: (STRING, False),
               11: (ATTRIBUTE, True), 12: (OPAQUE, True), 13: (STRING, False), 14: (OPAQUE, True)},
    TRAINING: {1: (GRAPH, False), 2: (GRAPH, False), 3: (OPAQUE, True), 4: (OPAQUE, True)},
    ENTRY: {1: (STRING, False), 2: (STRING, False)},
}

# (kind, field) -> the enum's valid values. Protobuf reads an enum as an int32 and keeps a value it does not
# know as an unknown field, so anything outside these ranges would read differently in onnxruntime.
ENUM_RANGES = {
    (TENSOR, 2): range(0, 29),     # TensorProto.DataType, UNDEFINED .. the last onnx 1.23 knows
    (TENSOR, 14): range(0, 2),     # DataLocation: DEFAULT, EXTERNAL
    (ATTRIBUTE, 20): range(0, 15),  # AttributeType, UNDEFINED .. TYPE_PROTOS
}

# kind -> {tag value: (field number, how it is read, repeated)}: the tags the canonical encoding uses
TAGS: dict[int, dict[int, tuple[int, int, bool]]] = {
    kind: {number << 3 | _WIRE_OF.get(how, WIRE_LEN): (number, how, repeated)
           for number, (how, repeated) in fields.items()}
    for kind, fields in _FIELDS.items()
}
