"""Lossless means bit-exact: every codec, every dtype, every bit pattern, every frame boundary."""

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import edgepack
from edgepack.packager.encode import LZ, ORDER0, RAW, Choice, candidates, encode, encode_planes
from edgepack.packager.planes import PLANE_ROTATIONS, split_planes
from edgepack.runtime import open_bundle
from edgepack.runtime.codecs import DECODERS
from edgepack.runtime.format import DTYPES, Codec

import graphs

FLOATS = ["float32", "float16", "bfloat16", "float64"]
ALL_DTYPES = [d for d in DTYPES if DTYPES[d][2] > 0]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(encoded, dtype) -> bytes:
    """The encoded frames decoded through the runtime's decoder, each checked the way a reader checks it."""
    itemsize = max(DTYPES[dtype][2], 1)
    decoder = DECODERS[encoded.codec]
    out = bytearray(encoded.raw_length)
    pos = 0
    for f in encoded.frames:
        frame = {"length": len(f.payload), "raw_length": f.raw_length, "sha256": f.sha256, **f.params}
        assert decoder.check(frame, itemsize) is None
        decoder.decode_into(memoryview(f.payload), frame, memoryview(out)[pos:pos + f.raw_length])
        pos += f.raw_length
    return bytes(out)


def special_floats(dtype: str, count: int, seed: int) -> bytes:
    """Weights-like values with NaNs (several payloads), infinities, -0.0, denormals and extremes mixed in."""
    rng = np.random.default_rng(seed)
    if dtype == "bfloat16":
        bits = (rng.standard_normal(count).astype(np.float32) * 0.05).view(np.uint32) >> 16
        specials = [0x7FC0, 0xFFC1, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x807F, 0x7F7F, 0x0000]
        bits = bits.astype(np.uint16)
    else:
        values = (rng.standard_normal(count) * 0.05).astype(dtype)
        info = np.finfo(dtype)
        width = np.dtype(dtype).itemsize * 8
        kind = {16: np.uint16, 32: np.uint32, 64: np.uint64}[width]
        bits = values.view(kind)
        specials = [np.array(v, dtype).view(kind).item() for v in
                    (np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, info.max, info.min, info.tiny,
                     info.smallest_subnormal, -info.smallest_subnormal)]
        specials.append((1 << (width - 1)) - 1)  # a NaN with every payload bit set
    if count:
        where = rng.integers(0, count, size=max(1, count // 20))
        bits[where] = rng.choice(np.array(specials, dtype=bits.dtype), size=len(where))
    return bits.tobytes()


@st.composite
def tensors(draw, dtypes=ALL_DTYPES):
    """(dtype, raw bytes): weights with special values, noise, runs of a few byte values, or bytes hypothesis
    picks itself (short enough for it to explore and shrink)."""
    dtype = draw(st.sampled_from(dtypes))
    itemsize = DTYPES[dtype][2]
    kind = draw(st.sampled_from(["weights", "noise", "runs", "drawn"]))
    if kind == "drawn":
        return dtype, draw(st.binary(max_size=600).map(lambda b: b[:len(b) // itemsize * itemsize]))
    count, seed = draw(st.integers(0, 3000)), draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "weights" and dtype in FLOATS:
        return dtype, special_floats(dtype, count, seed)
    if kind == "runs":
        values = rng.choice(np.array([0, 1, 255], np.uint8), size=count * itemsize // 8 + 1)
        return dtype, np.repeat(values, 8)[:count * itemsize].tobytes()
    return dtype, rng.integers(0, 256, count * itemsize, dtype=np.uint8).tobytes()


@SETTINGS
@given(tensors(), st.integers(1, 9000), st.data())
def test_every_candidate_round_trips(tensor, frame_bytes, data):
    dtype, raw = tensor
    codec = data.draw(st.sampled_from([None, *candidates(dtype)]))
    encoded = encode(memoryview(raw), dtype, level=data.draw(st.sampled_from([1, 3])), frame_bytes=frame_bytes,
                     codecs=None if codec is None else [codec])
    assert codec is None or encoded.codec == codec or not raw
    assert decode(encoded, dtype) == raw
    assert sum(f.raw_length for f in encoded.frames) == len(raw)
    assert all(f.raw_length % DTYPES[dtype][2] == 0 for f in encoded.frames)


@SETTINGS
@given(st.sampled_from([d for d in ALL_DTYPES if DTYPES[d][2] in (2, 4, 8)]), st.integers(1, 3000),
       st.integers(0, 2 ** 32 - 1), st.data())
def test_planes_decode_any_rotation_and_plane_codecs(dtype, count, seed, data):
    """The decoder handles every rotation and every raw/zstd mix, not only the ones the encoder picks."""
    width = DTYPES[dtype][2]
    raw = special_floats(dtype, count, seed) if dtype in FLOATS else np.random.default_rng(seed).integers(
        0, 256, count * width, dtype=np.uint8).tobytes()
    rotate = data.draw(st.integers(0, 8 * width - 1))
    modes = tuple(data.draw(st.lists(st.sampled_from([RAW, LZ, ORDER0]), min_size=width, max_size=width)))
    payload, params = encode_planes(memoryview(raw), dtype, 3, Choice(Codec.PLANES, modes, rotate))
    frame = {"length": len(payload), "raw_length": len(raw), "sha256": "0" * 64, **params}
    assert DECODERS[Codec.PLANES].check(frame, width) is None
    out = bytearray(len(raw))
    DECODERS[Codec.PLANES].decode_into(memoryview(payload), frame, memoryview(out))
    assert bytes(out) == raw


@SETTINGS
@given(hnp.arrays(st.sampled_from([np.float32, np.float16, np.float64]), hnp.array_shapes(min_dims=0, max_dims=4,
                                                                                           min_side=0, max_side=9),
                  elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=16)))
def test_arrays_of_any_shape_round_trip(array):
    dtype = array.dtype.name
    encoded = encode(memoryview(array.tobytes()), dtype, frame_bytes=4096)
    restored = np.frombuffer(decode(encoded, dtype), array.dtype).reshape(array.shape)
    assert restored.tobytes() == array.tobytes()  # bit for bit: NaN payloads and -0.0 included


@SETTINGS
@given(tensors(dtypes=FLOATS + ["int8", "int32", "int64"]))
def test_one_frame_is_never_larger_than_raw_or_zstd(tensor):
    """A tensor that fits one frame and the sample is coded exactly: no larger than raw or zstd level 3."""
    dtype, raw = tensor
    encoded = encode(memoryview(raw), dtype, level=3)
    zstd = len(zstandard.ZstdCompressor(level=3).compress(raw))
    assert encoded.length <= min(len(raw), zstd)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gaussian_weights_gather_the_exponent(dtype):
    raw = special_floats(dtype, 200_000, 0)
    encoded = encode(memoryview(raw), dtype)
    assert encoded.codec == Codec.PLANES and encoded.choice.rotate == 1
    frame = encoded.frames[0].params["planes"]
    assert [c for c, _ in frame][:-1] == [Codec.RAW] * (len(frame) - 1) and frame[-1][0] == Codec.ZSTD
    zstd = len(zstandard.ZstdCompressor(level=3).compress(raw))
    assert encoded.length < 0.93 * zstd
    assert decode(encoded, dtype) == raw


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_frames_larger_than_the_kept_scratch(dtype):
    """16 MiB frames are allowed: planes beyond the per-thread scratch get a buffer of their own."""
    from edgepack.runtime.codecs import SCRATCH_KEEP

    raw = special_floats(dtype, 3 * SCRATCH_KEEP + 5, 2)
    encoded = encode(memoryview(raw), dtype, frame_bytes=16 * 1024 * 1024)
    assert encoded.codec == Codec.PLANES and len(encoded.frames) == 1
    assert decode(encoded, dtype) == raw


def test_float16_is_split_without_rotation():
    encoded = encode(memoryview(special_floats("float16", 100_000, 0)), "float16")
    assert encoded.codec == Codec.PLANES and encoded.choice.rotate == 0


def test_choice_on_repetitive_and_random_data():
    assert encode(memoryview(bytes(1 << 20)), "float32").codec == Codec.ZSTD
    noise = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    assert encode(memoryview(noise), "float32").codec == Codec.RAW


def test_sample_spans_the_tensor():
    """Half zeros, half noise: a sample from the start alone would pick zstd for noise, or raw for zeros."""
    noise = np.random.default_rng(0).integers(0, 256, 2 << 20, dtype=np.uint8).tobytes()
    encoded = encode(memoryview(bytes(2 << 20) + noise), "uint8")
    assert encoded.codec == Codec.ZSTD and encoded.length < 2.2 * 2 ** 20


def test_rotating_float32_by_one_makes_plane_3_the_exponent():
    """The example docs/FORMAT.md gives: after rotate = 1, plane 3 is exactly the 8 exponent bits and the
    sign is bit 0 of plane 0."""
    x = np.frombuffer(special_floats("float32", 10_000, 3), np.uint32)
    planes = split_planes(x.tobytes(), 4, 1)
    assert np.array_equal(planes[3], (x >> 23) & 0xFF)
    assert np.array_equal(planes[0] & 1, x >> 31)


def test_planes_refuses_dtypes_without_planes():
    with pytest.raises(ValueError, match="does not apply to uint8"):
        encode(memoryview(bytes(100)), "uint8", codecs=[Codec.PLANES])


def test_format_documents_every_codec():
    import os

    text = open(os.path.join(os.path.dirname(__file__), "..", "docs", "FORMAT.md"), encoding="utf-8").read()
    for name, decoder in DECODERS.items():
        assert f"| `{name}` |" in text, name
        for key in decoder.frame_keys:
            assert f"| `{key}` |" in text, (name, key)


def test_rotations_are_in_range():
    for dtype, rotations in PLANE_ROTATIONS.items():
        assert all(0 <= r < 8 * DTYPES[dtype][2] for r in rotations)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bundle_round_trip_through_the_reader(tmp, dtype):
    """Through a real bundle: several frames, decoded on several threads by the reader."""
    from edgepack.packager.writer import BundleWriter

    raw = special_floats(dtype, 300_001, 1)
    count = len(raw) // DTYPES[dtype][2]
    with BundleWriter(tmp / "t.edgepack") as w:
        w.add_graph(encode(memoryview(b"\x08\x08"), "uint8"))
        w.add_tensor("w", dtype, (count,), encode(memoryview(raw), dtype, frame_bytes=64 * 1024), "external")
        w.finish({}, {}, {})
    with open_bundle(tmp / "t.edgepack") as b:
        entry = b.manifest.tensor("w")
        assert entry.codec == Codec.PLANES and len(entry.frames) > 4
        assert bytes(b.read_blob(entry, threads=3)) == raw
        assert b.verify() == []


def test_packaged_model_records_the_codecs(tmp):
    model, _ = graphs.mlp(hidden=(256, 256))
    result = edgepack.package(model, output=tmp / "m.edgepack")
    assert result.report["lossless"]["codecs"].get(Codec.PLANES, 0) >= 2
