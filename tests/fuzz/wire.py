"""Mutations of a model's protobuf wire encoding: what no onnx writer produces, but protobuf still reads.

The model (the seed's graph with its tensors spliced back in) is parsed into a tree of fields, following
onnx.proto for the messages that can carry tensors (edgepack.runtime.onnxschema) and keeping every other
field as bytes. One edit is made on the tree (tag widths and high bits, padded length varints, enum and
varint edge values, duplicated singular fields, unknown fields, changed wire types, unpacked or repacked
data, external-data references, fields moved between messages), then the tree is written back with every
length recomputed, each raw_data payload is cut out again as a bundle tensor, and the bundle is resealed
with fresh hashes (what an attacker who writes bundles by hand produces).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from edgepack.runtime import onnxschema as S

_SUB = {kind: {number: how for number, (how, _) in fields.items() if how < S.OPAQUE}
        for kind, fields in S._FIELDS.items()}


def varint(n: int, width: int = 0) -> bytes:
    n &= (1 << 70) - 1
    out = bytearray()
    while True:
        out.append(n & 0x7F)
        n >>= 7
        if not n and len(out) >= width:
            break
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


@dataclass
class Field:
    number: int
    wire: int
    value: int | bytes | Message
    tag_extra: int = 0        # bits set above the tag's 32 (the walker must refuse; protobuf drops them)
    tag_width: int = 0        # pad the tag varint to this many bytes
    len_width: int = 0        # pad a length varint to this many bytes
    raw: int | None = None    # the index of the seed tensor whose bytes this raw_data holds


@dataclass
class Message:
    kind: int | None
    fields: list[Field] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def varint(self) -> int:
        result = shift = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result


def parse(data: bytes, kind: int | None = S.MODEL) -> Message:
    r, msg = _Reader(data), Message(kind)
    while r.pos < len(data):
        key = r.varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            msg.fields.append(Field(number, 0, r.varint()))
        elif wire == 1:
            msg.fields.append(Field(number, 1, data[r.pos:r.pos + 8]))
            r.pos += 8
        elif wire == 5:
            msg.fields.append(Field(number, 5, data[r.pos:r.pos + 4]))
            r.pos += 4
        elif wire == 2:
            n = r.varint()
            payload = data[r.pos:r.pos + n]
            r.pos += n
            sub = _SUB.get(kind, {}).get(number) if kind is not None else None
            msg.fields.append(Field(number, 2, parse(payload, sub) if sub is not None else payload))
        else:
            raise ValueError(f"wire type {wire}")
    return msg


def serialize(msg: Message, out: bytearray, cuts: list[tuple[int, bytes, int | None]]) -> None:
    """Append `msg` to `out`; record (offset in out, payload, seed tensor) for each non-empty raw_data."""
    for f in msg.fields:
        out += varint((f.number << 3 | f.wire) | f.tag_extra, f.tag_width)
        if isinstance(f.value, Message):
            body = bytearray()
            inner: list[tuple[int, bytes, int | None]] = []
            serialize(f.value, body, inner)
            out += varint(len(body), f.len_width)
            cuts.extend((len(out) + at, payload, raw) for at, payload, raw in inner)
            out += body
        elif f.wire == 2:
            out += varint(len(f.value), f.len_width)
            if msg.kind == S.TENSOR and f.number == 9 and f.value:
                cuts.append((len(out), f.value, f.raw))
            out += f.value
        elif f.wire == 0:
            out += varint(f.value, f.len_width)
        else:
            out += f.value


def _messages(msg: Message, kinds: set[int] | None = None) -> list[Message]:
    found, stack = [], [msg]
    while stack:
        m = stack.pop()
        if kinds is None or m.kind in kinds:
            found.append(m)
        stack.extend(f.value for f in m.fields if isinstance(f.value, Message))
    return found


def _tensor_raws(msg: Message) -> None:
    """Number the raw_data payloads in stream order, as the seed's tensors are (its inline entries)."""
    order: list[Field] = []

    def walk(m: Message) -> None:
        for f in m.fields:
            if isinstance(f.value, Message):
                walk(f.value)
            elif m.kind == S.TENSOR and f.number == 9 and f.wire == 2 and f.value:
                order.append(f)
    walk(msg)
    for k, f in enumerate(order):
        f.raw = k


EDGE_VALUES = [0, 1, 2, 15, 16, 23, 28, 29, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 63, 2 ** 64 - 1]


def _edit(model: Message, rng: random.Random) -> str:
    every = _messages(model)
    data_msgs = [m for m in every if m.kind is not None]
    m = rng.choice(data_msgs)
    what = rng.choice(["tag_width", "tag_high", "len_width", "enum", "duplicate", "unknown", "wire_type",
                       "unpack", "external", "move", "number_zero", "varint_edge"])
    if what in ("tag_width", "tag_high", "len_width", "duplicate", "wire_type", "move", "number_zero",
                "varint_edge") and not m.fields:
        what = "unknown"
    if what == "tag_width":
        rng.choice(m.fields).tag_width = rng.choice([2, 3, 5, 6])
    elif what == "tag_high":
        f = rng.choice(m.fields)
        f.tag_extra = rng.choice([1 << 32, 1 << 33, 1 << 35, 0xF << 32])
    elif what == "len_width":
        f = rng.choice(m.fields)
        f.len_width = rng.choice([2, 3, 5, 10])
    elif what in ("enum", "varint_edge"):
        varints = [f for f in m.fields if f.wire == 0]
        if varints:
            rng.choice(varints).value = rng.choice(EDGE_VALUES)
        else:
            m.fields.append(Field(rng.choice([2, 14, 20]), 0, rng.choice(EDGE_VALUES)))
    elif what == "duplicate":
        f = rng.choice(m.fields)
        copy = Field(f.number, f.wire, f.value, raw=f.raw)
        m.fields.insert(rng.randrange(len(m.fields) + 1), copy)
    elif what == "unknown":
        number = rng.choice([3, 15, 17, 99, 1000, 2 ** 29 - 1])
        wire = rng.choice([0, 1, 2, 5])
        value: int | bytes = {0: 7, 1: bytes(8), 2: b"\x08\x01", 5: bytes(4)}[wire]
        m.fields.insert(rng.randrange(len(m.fields) + 1), Field(number, wire, value))
    elif what == "wire_type":
        f = rng.choice(m.fields)
        if f.wire == 0:
            f.wire, f.value = 2, varint(int(f.value))  # a varint field sent packed (or as bytes)
        elif f.wire == 2 and not isinstance(f.value, Message) and len(f.value) <= 10:
            f.wire, f.value = 0, len(f.value)
        else:
            f.wire, f.value = 5, bytes(4)
    elif what == "unpack":
        tensors = _messages(model, {S.TENSOR})
        t = rng.choice(tensors) if tensors else m
        dims = [f for f in t.fields if f.number == 1 and f.wire == 0]
        if dims and rng.random() < 0.5:  # dims packed (proto2 writes them unpacked)
            packed = b"".join(varint(int(f.value)) for f in dims)
            t.fields = [f for f in t.fields if f not in dims] + [Field(1, 2, packed)]
        else:  # typed data as unpacked varints, beside whatever the tensor holds
            t.fields.append(Field(rng.choice([5, 7, 11]), 0, rng.choice([0, 1, 666])))
    elif what == "external":
        tensors = _messages(model, {S.TENSOR})
        if tensors:
            t = rng.choice(tensors)
            loc = rng.choice([b"/etc/passwd", b"../../x", b"_ORT_MEM_ADDR_", b"edgepack:w", b"weights.bin"])
            entry = Message(S.ENTRY, [Field(1, 2, b"location"), Field(2, 2, loc)])
            how = rng.random()
            if how < 0.4:
                t.fields.append(Field(13, 2, entry, tag_extra=rng.choice([0, 1 << 32])))
            if how > 0.3:
                t.fields.append(Field(14, 0, rng.choice([1, 2 ** 32 + 1]), tag_extra=rng.choice([0, 1 << 32])))
    elif what == "move":
        f = m.fields.pop(rng.randrange(len(m.fields)))
        rng.choice(data_msgs).fields.append(f)
    elif what == "number_zero":
        rng.choice(m.fields).number = 0
    return what


def mutate_model(manifest: dict, joined: bytes, tensors: list[bytes],
                 rng: random.Random) -> tuple[str, dict, bytes, list[bytes]] | None:
    """(edit, manifest, graph, tensors) for one wire-level edit of the model `joined`, or None."""
    try:
        model = parse(joined)
    except (ValueError, IndexError):
        return None
    _tensor_raws(model)
    what = _edit(model, rng)
    out = bytearray()
    cuts: list[tuple[int, bytes, int | None]] = []
    serialize(model, out, cuts)
    inline = [e for e in manifest["tensors"] if "splice" in e]
    inline.sort(key=lambda e: e["splice"])
    index = {id(e): i for i, e in enumerate(manifest["tensors"])}
    order = [index[id(e)] for e in inline]
    graph, entries, raws, pos, names = bytearray(), [], [], 0, set()
    for at, payload, raw in cuts:
        graph += out[pos:at]
        if raw is not None and raw < len(order):
            base = dict(manifest["tensors"][order[raw]])
        else:
            base = {"name": "t", "dtype": "uint8", "shape": [len(payload)], "binding": "inline"}
        name = base["name"]
        while name in names:
            name += "#"
        names.add(name)
        base.update(name=name, splice=len(graph))
        entries.append(base)
        raws.append(payload)
        pos = at + len(payload)
    graph += out[pos:]
    for e, raw in zip(manifest["tensors"], tensors):
        if "splice" not in e:
            entries.append(e)
            raws.append(raw)
    return what, dict(manifest, tensors=entries), bytes(graph), raws
