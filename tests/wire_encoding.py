"""Hand-written protobuf wire encoding, for graphs that onnx's own writer would never produce.

A hostile bundle is made of bytes, not of ModelProtos: these helpers write fields with any tag width,
any varint padding and any field order, and a tiny model around them (an input x: float[4], an output y)."""

from __future__ import annotations

FLOAT, INT64 = 1, 7  # TensorProto.DataType (no onnx import: the runtime-only checks use this module too)


def varint(n: int, width: int | None = None) -> bytes:
    """`n` as a varint; with `width`, padded to that many bytes (continuation bits on all but the last)."""
    n &= (1 << 70) - 1
    out = bytearray()
    while True:
        out.append(n & 0x7F)
        n >>= 7
        if not n and (width is None or len(out) >= width):
            break
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


def tag(number: int, wire: int, high: int = 0, width: int | None = None) -> bytes:
    """A field's key; `high` sets bits above the 32 a protobuf reader keeps (it then needs 5 bytes)."""
    return varint((number << 3 | wire) | high, width)


def ld(number: int, payload: bytes, **kw) -> bytes:
    """A length-delimited field."""
    return tag(number, 2, **kw) + varint(len(payload)) + payload


def vi(number: int, value: int, **kw) -> bytes:
    """A varint field."""
    return tag(number, 0, **kw) + varint(value)


def tensor(name: str, dims: list[int], data_type: int = FLOAT, body: bytes = b"") -> bytes:
    """A TensorProto's fields in onnx's order (dims, data_type), then `body` and the name."""
    return b"".join(vi(1, d) for d in dims) + vi(2, data_type) + body + ld(8, name.encode())


def node(op: str, inputs: list[str], outputs: list[str], attributes: list[bytes] = ()) -> bytes:
    return (b"".join(ld(1, i.encode()) for i in inputs) + b"".join(ld(2, o.encode()) for o in outputs)
            + ld(4, op.encode()) + b"".join(ld(5, a) for a in attributes))


def attribute(name: str, kind: int, body: bytes) -> bytes:
    return ld(1, name.encode()) + body + vi(20, kind)


def model(nodes: list[bytes], initializers: list[bytes] = (), functions: list[bytes] = (),
          inputs=(("x", [4]),), outputs=(("y", [4]),), opset: int = 17) -> bytes:
    """A ModelProto around `nodes` (and initializers, functions), each already encoded."""
    from onnx import TensorProto, helper

    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape).SerializeToString()

    graph = (b"".join(ld(1, n) for n in nodes) + ld(2, b"g") + b"".join(ld(5, t) for t in initializers)
             + b"".join(ld(11, info(*i)) for i in inputs) + b"".join(ld(12, info(*o)) for o in outputs))
    opsets = [helper.make_opsetid("", opset).SerializeToString()]
    if functions:
        opsets.append(helper.make_opsetid("local", 1).SerializeToString())
    return (vi(1, 8) + ld(7, graph) + b"".join(ld(8, o) for o in opsets)
            + b"".join(ld(25, f) for f in functions))


def splice_cut(serialized: bytes, payload: bytes) -> tuple[bytes, int]:
    """(`serialized` with the one occurrence of `payload` cut out, the offset it was cut from): a tensor's
    raw bytes leave the graph and become a bundle tensor spliced back in there."""
    at = serialized.index(payload)
    assert serialized.count(payload) == 1
    return serialized[:at] + serialized[at + len(payload):], at


def bundle(base_manifest: dict, graph: bytes, tensors: list[tuple[dict, bytes]] = ()) -> bytes:
    """An unsigned bundle of `graph` and (manifest entry, raw bytes) tensors, hashed afresh."""
    import bundles

    manifest = dict(base_manifest, tensors=[entry for entry, _ in tensors])
    return bundles.build(manifest, graph, [raw for _, raw in tensors])
