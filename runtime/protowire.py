"""A strict reader of the protobuf wire format, for the ONNX messages that can hold tensors.

The runtime never parses a model with the `onnx` package (it is not installed on devices). It needs to find
every TensorProto in a stored graph, check where the bundle's tensors are spliced in, and refuse data the
graph would fetch from elsewhere. This module walks the wire format of a *virtual* stream: the stored graph
bytes with tensor payloads spliced in at given offsets, without materialising the payloads.

It accepts only the canonical encoding, the one onnx's SerializeToString writes, because only then does it
read the same model as protobuf in onnxruntime does (a security review showed each of these read
differently: docs/DESIGN.md, "The graph walker"):

- varints are minimal (no padding bytes, no bits past the 64th); a tag is at most 5 bytes and below 2**32,
  so no high bit is silently dropped, and its field number is not 0;
- in the messages that can carry data (runtime/onnxschema.py) every field is known, under the wire type
  protobuf writes for it, and a singular field appears at most once;
- enum values (data_type, data_location, attribute type) are in their enum's range;
- external data (data_location EXTERNAL or external_data entries) appears only on main-graph initializers,
  where load() checks that it names a tensor of the bundle itself.

Every place a tensor can sit is walked: initializers, sparse initializers (values and indices), node
attributes (t, tensors, sparse_tensor, sparse_tensors, g, graphs) at any depth, functions' nodes and their
attribute defaults (FunctionProto.attribute_proto), and training graphs. The walk is iterative, and stops
after `max_fields` fields, so its work is bounded by what the caller allows for the file's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from .onnxschema import (
    ATTRIBUTE, BYTES, ENTRY, ENUM, ENUM_RANGES, FIXED32, FUNCTION, GRAPH, KIND_NAMES, MODEL, NODE, OPAQUE,
    PACKED4, PACKED8, PACKEDVAR, RAW, SPARSE, STRING, TAGS, TENSOR, TRAINING, VARINT,
)
from .protorecords import (
    ROLE_ATTRIBUTE, ROLE_INITIALIZER, ROLE_SPARSE, STRING_TYPE, STRING_UNITS, GraphNames, ProtoError, TensorRecord,
    check_strings,
)

__all__ = ["ProtoError", "TensorRecord", "GraphNames", "scan_model", "ROLE_ATTRIBUTE", "ROLE_INITIALIZER",
           "ROLE_SPARSE", "MODEL", "GRAPH", "NODE", "ATTRIBUTE", "TENSOR",
           "SPARSE", "FUNCTION", "TRAINING"]

_MAX_DEPTH = 64
_SKIPPED = frozenset({OPAQUE, BYTES, STRING})
# the strings the walker reads (names that label tensors, external-data entries); others are skipped
_READ_TEXT = frozenset({(NODE, 2), (NODE, 3), (ATTRIBUTE, 1), (TENSOR, 8), (ENTRY, 1), (ENTRY, 2)})
_MAX_TAG = 1 << 32  # protobuf reads tags as uint32: a longer tag's high bits would be dropped
@dataclass
class _Context:
    node_output: str = ""
    node_name: str = ""
    attribute: str = ""


class _Frame:
    """One message being read: what it is, where it ends (virtual offset) and what it has seen so far."""

    __slots__ = ("kind", "end", "seen", "record", "ctx", "parent", "entry", "main", "scope", "node", "role",
                 "elements")

    def __init__(self, kind: int, end: int, ctx: _Context, parent: int, main: bool,
                 scope: int = -1, node: int = -1, role: int = ROLE_ATTRIBUTE):
        self.kind, self.end, self.ctx, self.parent, self.main = kind, end, ctx, parent, main
        self.scope, self.node, self.role = scope, node, role
        self.seen: set[int] = set()
        self.record = TensorRecord(label="", main_initializer=main, scope=scope, node=node,
                                   role=role) if kind == TENSOR else None
        self.entry: list[str] = ["", ""]
        self.elements = 1  # a SparseTensorProto's dims, multiplied


class _Walker:
    def __init__(self, data: bytes | memoryview, splices: list[tuple[int, int]], spliced_only: bool,
                 max_fields: int | None, any_external: bool = False):
        self.spliced_only = spliced_only
        self.any_external = any_external
        self.data = memoryview(data)
        self.pos = 0
        self.spliced = 0          # payload bytes spliced in before self.pos
        self.splices = splices
        self.next_splice = 0
        self.records: list[TensorRecord] = []
        self.names = GraphNames()  # every node's every output name, subgraphs included
        self.nodes = 0
        self.fields_left = max_fields if max_fields is not None else -1

    # --- primitives ---------------------------------------------------------------------------------

    def varint(self) -> int:
        """A minimal varint of at most 64 bits."""
        data, pos = self.data, self.pos
        b = data[pos] if pos < len(data) else -1
        if 0 <= b < 0x80:  # the common case: one byte
            self.pos = pos + 1
            return b
        result = shift = 0
        for i in range(10):
            if pos + i >= len(data):
                raise ProtoError(f"truncated varint at byte {pos}")
            b = data[pos + i]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                if i and not b:
                    raise ProtoError(f"varint at byte {pos} is padded (not minimally encoded)")
                if i == 9 and b > 1:
                    raise ProtoError(f"varint at byte {pos} has bits past the 64th")
                self.pos = pos + i + 1
                return result
            shift += 7
        raise ProtoError(f"varint longer than 10 bytes at byte {pos}")

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise ProtoError(f"field of {n} bytes at byte {self.pos} runs past the end of the graph")
        self.pos += n

    def text(self, n: int) -> str:
        start = self.pos
        self.skip(n)
        try:
            return bytes(self.data[start:self.pos]).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtoError(f"invalid UTF-8 string at byte {start}") from None

    def at_splice(self) -> bool:
        return self.next_splice < len(self.splices) and self.splices[self.next_splice][0] == self.pos

    # --- the walk -----------------------------------------------------------------------------------

    def walk(self, total: int) -> None:
        data, n, splices = self.data, len(self.data), self.splices
        stack = [_Frame(MODEL, total, _Context(), -1, False)]
        top, tags = stack[0], TAGS[MODEL]
        while True:
            end = top.end
            virt = self.pos + self.spliced
            if virt >= end:
                if virt > end:
                    raise ProtoError(f"a field overruns its {KIND_NAMES[top.kind]} at byte {self.pos}")
                stack.pop()
                self._finish(top, stack[-1] if stack else None)
                if not stack:
                    return
                top = stack[-1]
                tags = TAGS[top.kind]
                continue
            if self.fields_left == 0:
                raise ProtoError("the graph holds more protobuf fields than a bundle of this size may "
                                 "(a bound on the work of checking it)")
            self.fields_left -= 1
            start = self.pos
            b = data[start] if start < n else 0x80
            if 8 <= b < 0x80:  # the common case: a one-byte tag
                tag = b
                self.pos = start + 1
            else:
                tag = self.varint()
                if self.pos - start > 5 or tag >= _MAX_TAG:
                    raise ProtoError(f"tag at byte {start} is wider than 32 bits")
                if tag >> 3 == 0:
                    raise ProtoError(f"field number 0 at byte {start}")
            spec = tags.get(tag)
            if spec is None:
                raise ProtoError(f"field {tag >> 3} (wire type {tag & 7}) at byte {start} is not one "
                                 f"{KIND_NAMES[top.kind]} holds in the canonical encoding")
            number, how, repeated = spec
            if not repeated:
                if number in top.seen:
                    raise ProtoError(f"field {number} of a {KIND_NAMES[top.kind]} appears twice "
                                     f"(byte {start})")
                top.seen.add(number)
            if how in _SKIPPED and (top.kind, number) not in _READ_TEXT:  # the common case: bytes to skip
                p = self.pos
                b = data[p] if p < n else 0x80
                if b < 0x80:
                    length, p = b, p + 1
                else:
                    length = self.varint()
                    p = self.pos
                if self.next_splice < len(splices) and splices[self.next_splice][0] == p:
                    raise ProtoError(f"a tensor is spliced in at byte {p}, which is not a tensor's raw_data")
                if p + length > n:
                    raise ProtoError(f"field of {length} bytes at byte {p} runs past the end of the graph")
                self.pos = p + length
                if how == BYTES:  # TensorProto.string_data, AttributeProto.strings: a std::string each, twice
                    self.names.held += STRING_UNITS
                if top.record is not None and how == BYTES:
                    top.record.inline_data = top.record.inline_data or length > 0
                    top.record.strings += 1
            elif how == VARINT or how == ENUM:
                value = self.varint()
                if how == ENUM and value not in ENUM_RANGES[top.kind, number]:
                    raise ProtoError(f"enum value {value} of field {number} of a {KIND_NAMES[top.kind]} "
                                     f"at byte {start} is out of range")
                if top.record is not None:
                    self._tensor_scalar(top.record, number, value, self.any_external)
                elif top.kind == SPARSE:  # dims: onnxruntime makes the tensor dense when it builds the session
                    if value >= 1 << 63:
                        raise ProtoError(f"a sparse tensor has a negative dimension (byte {start})")
                    top.elements = min(top.elements * value, 1 << 64)
            elif how == FIXED32:
                self.skip(4)
            else:
                self._length_delimited(top, number, how, stack)
                if stack[-1] is not top:  # a sub-message begins
                    top = stack[-1]
                    tags = TAGS[top.kind]
                    continue
            if self.pos + self.spliced > end:
                raise ProtoError(f"a field overruns its {KIND_NAMES[top.kind]} at byte {self.pos}")

    def _length_delimited(self, top: _Frame, number: int, how: int, stack: list[_Frame]) -> None:
        length = self.varint()
        record = top.record
        if how == RAW and self.at_splice():
            raw_length = self.splices[self.next_splice][1]
            if raw_length != length:
                raise ProtoError(f"tensor payload at byte {self.pos} is {length} bytes in the graph but "
                                 f"{raw_length} in the manifest")
            assert record is not None
            record.splice, record.raw_offset, record.raw_length = self.next_splice, self.pos + self.spliced, length
            self.next_splice += 1
            self.spliced += length
            return
        if self.at_splice():
            raise ProtoError(f"a tensor is spliced in at byte {self.pos}, which is not a tensor's raw_data")
        if how < OPAQUE:  # a sub-message
            if len(stack) > _MAX_DEPTH:
                raise ProtoError(f"graphs nested deeper than {_MAX_DEPTH} levels")
            if how == ENTRY and not top.main and not self.any_external:
                raise ProtoError(f"tensor {self._label(top)!r} refers to external data, which only a main-graph "
                                 "initializer bound by the bundle may (a bundle must be self-contained)")
            ctx = _Context() if how == NODE else top.ctx
            main = top.kind == GRAPH and how == TENSOR and len(stack) == 2  # ModelProto.graph.initializer
            scope, node, role = self._place(top, number, how)
            stack.append(_Frame(how, self.pos + self.spliced + length, ctx, top.kind, main, scope, node, role))
            return
        if how == STRING and top.kind in (NODE, ATTRIBUTE, TENSOR, ENTRY) and self._reads(top, number):
            self._store_text(top, number, self.text(length))
            return
        if how == PACKED4 and length % 4 or how == PACKED8 and length % 8:
            raise ProtoError(f"packed field {number} at byte {self.pos} is {length} bytes, not whole numbers")
        if how == RAW and length and self.spliced_only:
            raise ProtoError(f"tensor {self._label(top)!r} holds {length} bytes of raw data that no "
                             "manifest entry lists (the graph lacks a tensor, or hides one)")
        if self.pos + length > len(self.data):
            raise ProtoError(f"field of {length} bytes at byte {self.pos} runs past the end of the graph")
        if record is not None and how in (RAW, PACKED4, PACKED8, PACKEDVAR, BYTES):  # BYTES: string_data
            record.inline_data = record.inline_data or length > 0
            if how == PACKEDVAR:  # a byte each here, up to 8 in onnxruntime (twice: protobuf's, the tensor's)
                self.names.held += length
            if how == RAW:
                record.raw_offset, record.raw_length = self.pos + self.spliced, length
        self.pos += length

    def _place(self, top: _Frame, number: int, how: int) -> tuple[int, int, int]:
        """The scope, node and role of a sub-message of `top` (field `number`, read as `how`). A graph is a
        scope, nested in the scope of the node whose attribute holds it; a function or a training graph is
        a scope of its own."""
        if how == GRAPH or how == FUNCTION:
            if how == GRAPH and top.kind == MODEL:
                self.names.main = len(self.names.parents)
            self.names.parents.append(top.scope if top.kind == ATTRIBUTE else -1)
            return len(self.names.parents) - 1, -1, ROLE_ATTRIBUTE
        if how == NODE:
            self.nodes += 1
            return top.scope, self.nodes - 1, ROLE_ATTRIBUTE
        if top.kind == GRAPH:  # an initializer or a sparse initializer
            return top.scope, top.node, ROLE_INITIALIZER if how == TENSOR else ROLE_SPARSE
        if top.kind == SPARSE and top.role == ROLE_SPARSE and number == 1:  # the values name the sparse tensor
            return top.scope, top.node, ROLE_SPARSE
        return top.scope, top.node, ROLE_ATTRIBUTE

    @staticmethod
    def _reads(top: _Frame, number: int) -> bool:
        if top.kind == NODE:
            return number in (2, 3)
        if top.kind == ATTRIBUTE or top.kind == TENSOR:
            return number == (1 if top.kind == ATTRIBUTE else 8)
        return True  # ENTRY: key and value

    def _store_text(self, top: _Frame, number: int, text: str) -> None:
        if top.kind == NODE:
            if number == 2:
                self.names.outputs.append((top.scope, top.node, text))
                top.ctx.node_output = top.ctx.node_output or text
            else:
                top.ctx.node_name = text
        elif top.kind == ATTRIBUTE:
            top.ctx.attribute = text
        elif top.kind == TENSOR:
            assert top.record is not None
            top.record.label = top.record.name = text
        else:
            top.entry[number - 1] = text

    @staticmethod
    def _label(top: _Frame) -> str:
        ctx = top.ctx
        return (top.record.label if top.record else "") or ctx.node_output or ctx.node_name or ctx.attribute

    @staticmethod
    def _tensor_scalar(record: TensorRecord, number: int, value: int, any_external: bool = False) -> None:
        if number == 1:
            record.dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif number == 2:
            record.data_type = value
        elif number == 14:
            record.data_location = value
            if value and not record.main_initializer and not any_external:
                raise ProtoError(f"tensor {record.label!r} refers to external data (data_location), which only a "
                                 "main-graph initializer bound by the bundle may (a bundle must be self-contained)")

    def _finish(self, frame: _Frame, parent: _Frame | None) -> None:
        if frame.kind == SPARSE:
            self.names.dense.append(frame.elements)
        elif frame.kind == ENTRY:
            assert parent is not None and parent.record is not None
            owner = parent.record
            owner.external = owner.external or {}
            owner.external[frame.entry[0]] = frame.entry[1]
        elif frame.kind == TENSOR:
            record = frame.record
            assert record is not None
            ctx = frame.ctx
            record.label = record.label or ctx.node_output or ctx.node_name
            if ctx.attribute and not record.label:
                record.label = ctx.attribute
            if frame.parent == ATTRIBUTE and ctx.node_output:
                record.label = ctx.node_output  # a Constant's value is known by the node's output
            if record.data_type == STRING_TYPE:
                check_strings(record)
            self.records.append(record)


def scan_model(data: bytes | memoryview, splices: list[tuple[int, int]] | None = None,
               spliced_only: bool = False, max_fields: int | None = None,
               outputs: list[str] | None = None, names: GraphNames | None = None,
               any_external: bool = False) -> list[TensorRecord]:
    """Every TensorProto of a serialized ModelProto, in stream order.

    `splices` lists (offset in `data`, payload length) of raw_data payloads that are absent from `data` and
    supplied separately; offsets must be strictly increasing. Raises ProtoError on malformed or
    non-canonical input, or when a splice does not sit exactly on a TensorProto's raw_data payload of the
    stated length. With `spliced_only`, every non-empty raw_data must be spliced in (a bundle's graph holds
    no tensor bytes). `max_fields` bounds the number of fields read (ProtoError beyond it). `outputs`, if
    given, is extended with the output names of every node (a Constant's value_floats etc. hold no tensor).
    `names`, if given, receives the scopes and node outputs (GraphNames). `any_external`: let any tensor
    refer to external data, as a plain .onnx may (a Constant's value, a subgraph's initializer); never for a
    bundle's graph.
    """
    splices = splices or []
    walker = _Walker(data, splices, spliced_only, max_fields, any_external)
    total = len(walker.data) + sum(length for _, length in splices)
    walker.walk(total)
    if walker.pos != len(walker.data):
        raise ProtoError(f"{len(walker.data) - walker.pos} bytes left after the model")
    if walker.next_splice != len(splices):
        offset = splices[walker.next_splice][0]
        raise ProtoError(f"a tensor is spliced in at byte {offset}, which is not a tensor's raw_data")
    if outputs is not None:
        outputs.extend(name for _, _, name in walker.names.outputs)
    if names is not None:
        names.parents, names.main, names.outputs = walker.names.parents, walker.names.main, walker.names.outputs
        names.dense, names.held = walker.names.dense, walker.names.held
    return walker.records
