"""The runtime's protobuf walker agrees with onnx about every tensor, and refuses malformed streams."""

import pytest

from edgepack.runtime.format import ONNX_TO_DTYPE
from edgepack.runtime.protowire import ProtoError, scan_model

import prebuilt


@pytest.mark.packager
@pytest.mark.parametrize("kind", prebuilt.round_trip_kinds())
def test_scan_finds_every_tensor(kind):
    from edgepack.packager.skeleton import iter_tensor_protos

    import graphs

    model, _ = graphs.ALL[kind]()
    records = scan_model(model.SerializeToString())
    protos = list(iter_tensor_protos(model))
    assert len(records) == len(protos)
    assert sorted(tuple(r.dims) for r in records) == sorted(tuple(t.dims) for t in protos)


def _join(split):
    """The serialized model again from a split_model() result: each inline tensor's bytes back at its splice."""
    from edgepack.runtime.format import BINDING_INLINE

    parts, pos = [], 0
    for t in sorted((t for t in split.tensors if t.binding == BINDING_INLINE), key=lambda t: t.splice):
        parts += [split.skeleton[pos:t.splice], bytes(t.data)]
        pos = t.splice
    parts.append(split.skeleton[pos:])
    return b"".join(parts)


@pytest.mark.packager
@pytest.mark.parametrize("kind", prebuilt.round_trip_kinds())
def test_split_and_join_reproduce_the_model(kind):
    from edgepack.packager.skeleton import split_model

    import graphs

    model, _ = graphs.ALL[kind]()
    split = split_model(model)          # normalizes in place
    assert _join(split) == model.SerializeToString()
    for t in split.tensors:
        assert t.dtype in ONNX_TO_DTYPE.values()
        assert scan_model(split.skeleton, [(s.splice, len(s.data)) for s in
                                           sorted(split.tensors, key=lambda s: s.splice)])


@pytest.mark.packager
def test_splice_must_sit_on_raw_data():
    from edgepack.packager.skeleton import split_model

    import graphs

    model, _ = graphs.mlp()
    split = split_model(model)
    splices = sorted((t.splice, len(t.data)) for t in split.tensors)
    off, n = splices[0]
    with pytest.raises(ProtoError):
        scan_model(split.skeleton, [(off + 1, n), *splices[1:]])
    with pytest.raises(ProtoError):
        scan_model(split.skeleton, [(off, n + 4), *splices[1:]])
    with pytest.raises(ProtoError, match="not a tensor"):
        scan_model(split.skeleton, [*splices, (len(split.skeleton), 0)])


@pytest.mark.parametrize("data", [b"\x3a\xff\xff\xff\xff\x0f", b"\x3a\x05ab", b"\x0b", b"\xff" * 11, b"\x3a\x80"])
def test_malformed_streams_raise_proto_error(data):
    with pytest.raises(ProtoError):
        scan_model(data)


def _field(number: int, payload: bytes) -> bytes:
    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_deep_nesting_is_bounded():
    graph = b""
    for _ in range(70):  # GraphProto.node -> NodeProto.attribute -> AttributeProto.g -> GraphProto ...
        graph = _field(1, _field(5, _field(6, graph)))
    with pytest.raises(ProtoError, match="nested"):
        scan_model(_field(7, graph))
