"""A minimal reader of the protobuf wire format, for the ONNX messages that can hold tensors.

The runtime never parses a model with the `onnx` package (it is not installed on devices). It only needs to
find every TensorProto in a stored graph, check where the bundle's tensors are spliced in, and refuse data
the graph would fetch from elsewhere. This module walks the wire format of a *virtual* stream: the stored
graph bytes with tensor payloads spliced in at given offsets, without materialising the payloads.

Only the fields that lead to tensors are descended into (field numbers from onnx.proto):

    ModelProto.graph(7), .training_info(20), .functions(25)
    GraphProto.node(1), .initializer(5), .sparse_initializer(15)
    NodeProto.output(2), .name(3), .op_type(4), .attribute(5)
    AttributeProto.name(1), .t(5), .g(6), .tensors(10), .graphs(11), .sparse_tensor(22), .sparse_tensors(23)
    FunctionProto.node(7)            TrainingInfoProto.initialization(1), .algorithm(2)
    SparseTensorProto.values(1), .indices(2)
    TensorProto.dims(1), .data_type(2), .name(8), .raw_data(9), .external_data(13), .data_location(14),
               and the typed data fields 4, 5, 6, 7, 10, 11 (inline data)
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL, GRAPH, NODE, ATTRIBUTE, TENSOR, SPARSE, FUNCTION, TRAINING = range(8)

# (message kind, field number) -> kind of the sub-message that field holds
_SUBMESSAGES = {
    (MODEL, 7): GRAPH, (MODEL, 20): TRAINING, (MODEL, 25): FUNCTION,
    (GRAPH, 1): NODE, (GRAPH, 5): TENSOR, (GRAPH, 15): SPARSE,
    (NODE, 5): ATTRIBUTE,
    (ATTRIBUTE, 5): TENSOR, (ATTRIBUTE, 6): GRAPH, (ATTRIBUTE, 10): TENSOR, (ATTRIBUTE, 11): GRAPH,
    (ATTRIBUTE, 22): SPARSE, (ATTRIBUTE, 23): SPARSE,
    (FUNCTION, 7): NODE,
    (TRAINING, 1): GRAPH, (TRAINING, 2): GRAPH,
    (SPARSE, 1): TENSOR, (SPARSE, 2): TENSOR,
}
_TENSOR_RAW_DATA = 9
_TENSOR_EXTERNAL_DATA = 13
_TENSOR_TYPED_DATA = {4, 5, 6, 7, 10, 11}
_MAX_DEPTH = 64


class ProtoError(ValueError):
    """The bytes are not a well-formed ONNX model (as far as this reader looks)."""


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


@dataclass
class _Context:
    node_output: str = ""
    node_name: str = ""
    attribute: str = ""


class _Walker:
    def __init__(self, data: bytes | memoryview, splices: list[tuple[int, int]], spliced_only: bool = False):
        self.spliced_only = spliced_only
        self.data = memoryview(data)
        self.pos = 0
        self.spliced = 0          # payload bytes spliced in before self.pos
        self.splices = splices
        self.next_splice = 0
        self.records: list[TensorRecord] = []

    # --- primitives ---------------------------------------------------------------------------------

    def virt(self) -> int:
        return self.pos + self.spliced

    def varint(self) -> int:
        result = shift = 0
        data, pos = self.data, self.pos
        for i in range(10):
            if pos + i >= len(data):
                raise ProtoError(f"truncated varint at byte {pos}")
            b = data[pos + i]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos + i + 1
                return result
            shift += 7
        raise ProtoError(f"varint longer than 10 bytes at byte {pos}")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtoError(f"field of {n} bytes at byte {self.pos} runs past the end of the graph")
        self.pos += n

    def take(self, n: int) -> bytes:
        start = self.pos
        self.skip(n)
        return bytes(self.data[start:self.pos])

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtoError(f"invalid UTF-8 string at byte {self.pos - n}") from None

    def at_splice(self) -> bool:
        return self.next_splice < len(self.splices) and self.splices[self.next_splice][0] == self.pos

    # --- messages -----------------------------------------------------------------------------------

    def message(self, kind: int, end: int, depth: int, ctx: _Context) -> TensorRecord | None:
        if depth > _MAX_DEPTH:
            raise ProtoError(f"graphs nested deeper than {_MAX_DEPTH} levels")
        record = TensorRecord(label="") if kind == TENSOR else None
        if kind == NODE:
            ctx = _Context()
        while self.virt() < end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ProtoError(f"field number 0 at byte {self.pos}")
            if wire == 0:
                value = self.varint()
                if record is not None:
                    self._tensor_scalar(record, number, value)
            elif wire == 1:
                self.skip(8)
            elif wire == 5:
                self.skip(4)
            elif wire == 2:
                self._length_delimited(kind, number, depth, ctx, record)
            else:
                raise ProtoError(f"unsupported wire type {wire} at byte {self.pos}")
            if self.virt() > end:
                raise ProtoError(f"field overruns its message at byte {self.pos}")
        if record is not None:
            record.label = record.label or ctx.node_output or ctx.node_name
            if ctx.attribute and not record.label:
                record.label = ctx.attribute
            self.records.append(record)
        return record

    def _tensor_scalar(self, record: TensorRecord, number: int, value: int) -> None:
        if number == 1:
            record.dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif number == 2:
            record.data_type = value
        elif number == 14:
            record.data_location = value
        elif number in _TENSOR_TYPED_DATA and value:
            record.inline_data = True

    def _entry(self, end: int) -> tuple[str, str]:
        """A StringStringEntryProto (key = 1, value = 2), as in TensorProto.external_data."""
        key = value = ""
        while self.virt() < end:
            tag = self.varint()
            if tag & 7 == 2:
                text = self.text(self.varint())
                if tag >> 3 == 1:
                    key = text
                elif tag >> 3 == 2:
                    value = text
            elif tag & 7 == 0:
                self.varint()
            else:
                raise ProtoError(f"unexpected wire type in an external_data entry at byte {self.pos}")
        if self.virt() != end:
            raise ProtoError(f"external_data entry overruns at byte {self.pos}")
        return key, value

    def _length_delimited(self, kind: int, number: int, depth: int, ctx: _Context,
                          record: TensorRecord | None) -> None:
        length = self.varint()
        if kind == TENSOR and number == _TENSOR_RAW_DATA and self.at_splice():
            offset, raw_length = self.splices[self.next_splice]
            if raw_length != length:
                raise ProtoError(f"tensor payload at byte {self.pos} is {length} bytes in the graph but "
                                 f"{raw_length} in the manifest")
            assert record is not None
            record.splice, record.raw_offset, record.raw_length = self.next_splice, self.virt(), length
            self.next_splice += 1
            self.spliced += length
            return
        if self.at_splice():
            raise ProtoError(f"a tensor is spliced in at byte {self.pos}, which is not a tensor's raw_data")
        if kind == TENSOR and number == _TENSOR_EXTERNAL_DATA and record is not None:
            key, value = self._entry(self.virt() + length)
            record.external = record.external or {}
            record.external[key] = value
            return
        sub = _SUBMESSAGES.get((kind, number))
        if sub is not None:
            sub_record = self.message(sub, self.virt() + length, depth + 1, ctx)
            if sub == TENSOR and kind == ATTRIBUTE and sub_record is not None and ctx.node_output:
                sub_record.label = ctx.node_output  # a Constant's value is known by the node's output
            return
        if kind == TENSOR and record is not None:
            if number == 8:
                record.label = self.text(length)
                return
            if number == 1:      # packed dims
                end = self.pos + length
                if end > len(self.data):
                    raise ProtoError(f"packed dims run past the end of the graph at byte {self.pos}")
                while self.pos < end:
                    value = self.varint()
                    record.dims.append(value - (1 << 64) if value >= 1 << 63 else value)
                if self.pos != end:
                    raise ProtoError(f"packed dims overrun at byte {self.pos}")
                return
            if number == _TENSOR_RAW_DATA or number in _TENSOR_TYPED_DATA:
                record.inline_data = record.inline_data or length > 0
                if number == _TENSOR_RAW_DATA:
                    if length and self.spliced_only:
                        label = record.label or ctx.node_output or ctx.node_name or ctx.attribute
                        raise ProtoError(f"tensor {label!r} holds {length} bytes of raw data that no manifest "
                                         "entry lists (the graph lacks a tensor, or hides one)")
                    record.raw_offset, record.raw_length = self.virt(), length
        elif kind == NODE and number == 2 and not ctx.node_output:
            ctx.node_output = self.text(length)
            return
        elif kind == NODE and number == 3:
            ctx.node_name = self.text(length)
            return
        elif kind == ATTRIBUTE and number == 1:
            ctx.attribute = self.text(length)
            return
        self.skip(length)


def scan_model(data: bytes | memoryview, splices: list[tuple[int, int]] | None = None,
               spliced_only: bool = False) -> list[TensorRecord]:
    """Every TensorProto of a serialized ModelProto, in stream order.

    `splices` lists (offset in `data`, payload length) of raw_data payloads that are absent from `data` and
    supplied separately; offsets must be strictly increasing. Raises ProtoError on malformed input, or when a
    splice does not sit exactly on a TensorProto's raw_data payload of the stated length. With
    `spliced_only`, every non-empty raw_data must be spliced in (a bundle's graph holds no tensor bytes).
    """
    splices = splices or []
    walker = _Walker(data, splices, spliced_only)
    total = len(walker.data) + sum(length for _, length in splices)
    walker.message(MODEL, total, 0, _Context())
    if walker.pos != len(walker.data):
        raise ProtoError(f"{len(walker.data) - walker.pos} bytes left after the model")
    if walker.next_splice != len(splices):
        offset = splices[walker.next_splice][0]
        raise ProtoError(f"a tensor is spliced in at byte {offset}, which is not a tensor's raw_data")
    return walker.records
