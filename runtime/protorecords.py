"""What the graph walker (runtime/protowire.py) records of a stored graph: each TensorProto it finds, the names
and scopes the binding check needs (runtime/binding.py), and what onnxruntime will hold beyond the graph's bytes
(limits.check_dense); and the one check made on a record as a whole, that a string tensor's dims count its
strings."""

from __future__ import annotations

from dataclasses import dataclass, field

# What a TensorProto is to its graph: a node attribute's value (or a sparse tensor's indices), an
# initializer, or the values of a sparse initializer (whose name is the sparse initializer's)
ROLE_ATTRIBUTE, ROLE_INITIALIZER, ROLE_SPARSE = range(3)
STRING_TYPE = 8  # TensorProto.DataType.STRING
# 8-byte units onnxruntime holds per string of a tensor or attribute: protobuf's std::string and its slot,
# then the tensor's std::string (7.9 million empty strings, 17 MB of graph, loaded at +700 MB)
STRING_UNITS = 10


class ProtoError(ValueError):
    """The bytes are not a well-formed ONNX model in canonical encoding."""


@dataclass
class TensorRecord:
    """One TensorProto found in the stream."""

    label: str                        # the tensor's name, or where it sits (node output / attribute)
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_offset: int | None = None      # virtual offset of the raw_data payload
    raw_length: int = 0
    splice: int | None = None          # index of the splice that supplies raw_data
    inline_data: bool = False          # data stored in the graph itself (typed fields or raw_data)
    external: dict[str, str] | None = None
    data_location: int = 0
    main_initializer: bool = False     # an initializer of the main graph (the only place external data may be)
    name: str = ""                     # its own name field, as stored
    scope: int = -1                    # the graph or function it sits in (an index into GraphNames.parents)
    node: int = -1                     # the node whose attribute holds it (numbered in stream order; -1: none)
    role: int = ROLE_ATTRIBUTE
    strings: int = 0                   # string_data entries


@dataclass
class GraphNames:
    """The scopes names are defined in, and every node's outputs: what a check of the names of a graph needs
    beside its tensors (runtime/binding.py)."""

    parents: list[int] = field(default_factory=list)  # scope -> the scope it is nested in (-1: none)
    main: int = -1                                     # the scope of ModelProto.graph
    outputs: list[tuple[int, int, str]] = field(default_factory=list)  # (scope, node, output name)
    dense: list[int] = field(default_factory=list)  # each sparse tensor's element count once made dense
    # what onnxruntime holds beyond the graph's bytes, in 8-byte units: a unit per byte of a tensor's packed
    # varint fields (int32/int64/uint64_data: a byte each here), STRING_UNITS per string (string_data, strings)
    held: int = 0



def check_strings(record: TensorRecord) -> None:
    """A string tensor's dims must count its strings: onnxruntime allocates and constructs a std::string per
    element the dims declare before it compares them with the strings held (for numeric types it compares
    first), so dims of 10**8 over no strings took gigabytes before its refusal."""
    elements = 1
    for d in record.dims:
        elements = -1 if d < 0 or elements < 0 else min(elements * d, 1 << 64)
    if elements != record.strings:
        declared = "negative" if elements < 0 else f"{elements}" if elements < 1 << 64 else "2**64 or more"
        raise ProtoError(f"string tensor {record.label[:200]!r}: its dims declare {declared} elements but it holds "
                         f"{record.strings} strings")
