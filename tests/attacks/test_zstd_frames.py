"""Finding 8 of issue 19: zstd laxness. Skippable frames after a tensor's frame passed verify() on an unsigned
bundle (bytes hidden from every hash), a second frame could follow the first, and a frame declaring a 2 GiB
window decoded although the limit is 16 MiB (zstd checks the window only when it streams, and it decodes in
one pass into a buffer big enough for the content). Each chunk is now exactly one frame, checked from its
header and block headers (runtime/zstdframe.py) before it is decoded."""

import hashlib

import numpy as np
import pytest
import zstandard

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.codecs import CodecError, zstd_decode_into
from edgepack.runtime.format import MAX_ZSTD_WINDOW
from edgepack.runtime.zstdframe import FrameShapeError, frame_shape, window_size

import bundles
from conftest import write

RAW = np.random.default_rng(8).integers(0, 4, 64 * 64).astype(np.float32).tobytes()  # w2 of mlp(64, 64)
FRAME = zstandard.ZstdCompressor(level=3).compress(RAW)
SKIPPABLE = (0x184D2A5A).to_bytes(4, "little") + (8).to_bytes(4, "little") + b"HIDDEN!!"


def _header_end(frame: bytes) -> int:
    fhd = frame[4]
    single = fhd >> 5 & 1
    fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    return 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs


def with_window(frame: bytes, descriptor: int) -> bytes:
    """`frame` re-headed as a multi-segment frame whose window descriptor is `descriptor` (8-byte size)."""
    content = zstandard.frame_content_size(frame)
    fhd = 0xC0 | (frame[4] & 0x04)  # 8-byte content size, not single segment, keep the checksum flag
    return frame[:4] + bytes([fhd, descriptor]) + content.to_bytes(8, "little") + frame[_header_end(frame):]


def _descriptor(window: int) -> int:
    return next(d for d in range(256) if window_size(d) == window)


def _bundle_with(mlp_bundle, payload: bytes) -> bytes:
    data, _ = mlp_bundle
    _, _, m, _ = bundles.parts(data)
    index = next(i for i, t in enumerate(m["tensors"], 1) if t["raw_length"] == len(RAW))
    sha = hashlib.sha256(RAW).hexdigest()
    out = bundles.with_frames(data, index, [(payload, len(RAW), sha)])
    return bundles.edit_manifest(out, lambda m: m["tensors"][index - 1].update(sha256=sha))


def test_the_plain_frame_is_accepted(tmp, mlp_bundle):
    path = write(tmp, _bundle_with(mlp_bundle, FRAME))
    with open_bundle(path) as b:
        assert b.verify() == []


@pytest.mark.parametrize("how", ["skippable after", "skippable before", "second frame", "empty frame after",
                                 "one byte after"])
def test_bytes_beside_the_frame_are_refused(tmp, mlp_bundle, how):
    payload = {"skippable after": FRAME + SKIPPABLE, "skippable before": SKIPPABLE + FRAME,
               "second frame": FRAME + zstandard.ZstdCompressor().compress(b"x"),
               "empty frame after": FRAME + zstandard.ZstdCompressor().compress(b""),
               "one byte after": FRAME + b"\0"}[how]
    path = write(tmp, _bundle_with(mlp_bundle, payload))
    with open_bundle(path) as b:
        problems = b.verify()
        assert len(problems) == 1 and "zstd" in problems[0], problems
        with pytest.raises(E.CorruptTensor):
            b.read_blob(next(t for t in b.manifest.tensors if t.raw_length == len(RAW)))
    with pytest.raises(E.CorruptTensor):
        load(path)


def test_a_window_of_2_gib_is_refused_although_the_content_is_small(tmp, mlp_bundle):
    bomb = with_window(FRAME, _descriptor(2 ** 31))
    assert zstandard.ZstdDecompressor().decompress(bomb) == RAW  # a frame zstd itself decodes
    out = bytearray(len(RAW))
    with pytest.raises(CodecError, match="window"):
        zstd_decode_into(memoryview(bomb), memoryview(out))
    path = write(tmp, _bundle_with(mlp_bundle, bomb))
    with open_bundle(path) as b:
        assert any("window" in p for p in b.verify())
    with pytest.raises(E.CorruptTensor, match="window"):
        load(path)


def test_the_window_limit_itself_is_allowed_and_one_step_over_is_not(tmp, mlp_bundle):
    at = with_window(FRAME, _descriptor(MAX_ZSTD_WINDOW))
    assert frame_shape(at, MAX_ZSTD_WINDOW) == (len(RAW), MAX_ZSTD_WINDOW)
    with open_bundle(write(tmp, _bundle_with(mlp_bundle, at))) as b:
        assert b.verify() == []
    over = with_window(FRAME, _descriptor(MAX_ZSTD_WINDOW) + 1)  # mantissa 1: 16 MiB + 2 MiB
    with pytest.raises(FrameShapeError, match="window"):
        frame_shape(over, MAX_ZSTD_WINDOW)
