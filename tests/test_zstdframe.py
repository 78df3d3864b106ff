"""runtime/zstdframe.py and codecs.zstd_decode_into on hand-made zstd frames (RFC 8878), each rule tried where
it holds and where it breaks: issue 19's mutation test left these checks unexercised (scripts/mutation)."""

import os

import pytest
import zstandard

from edgepack.runtime.codecs import CodecError, zstd_decode_into
from edgepack.runtime.zstdframe import MAX_BLOCK, FrameShapeError, frame_shape

LIMIT = 1 << 27
TEXT = b"edgepack frames " * 512          # 8 KiB that compresses
NOISE = os.urandom(3 * MAX_BLOCK + 5)    # incompressible: stored as raw blocks


def decoded(frame: bytes, size: int) -> bytes:
    out = bytearray(size)
    zstd_decode_into(memoryview(frame), memoryview(out))
    return bytes(out)


def test_a_frame_with_a_checksum_is_accepted_whole():
    frame = zstandard.ZstdCompressor(write_checksum=True).compress(TEXT)
    assert frame[4] >> 2 & 1  # the checksum flag, bit 2 of the descriptor (next to the dictionary-id bits)
    assert frame_shape(frame, LIMIT) == (len(TEXT), len(TEXT))
    assert decoded(frame, len(TEXT)) == TEXT
    with pytest.raises(FrameShapeError, match="truncated"):
        frame_shape(frame[:-1], LIMIT)  # the 4-byte checksum cut short


@pytest.mark.parametrize("nibble", range(16))
def test_every_skippable_magic_is_named_as_such(nibble):
    frame = (0x184D2A50 | nibble).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"data"
    with pytest.raises(FrameShapeError, match="skippable frame"):
        frame_shape(frame, LIMIT)


def test_reserved_descriptor_bits_are_refused():
    frame = bytearray(zstandard.ZstdCompressor().compress(TEXT))
    frame_shape(bytes(frame), LIMIT)
    for bit in (0x08, 0x10):
        bad = bytearray(frame)
        bad[4] |= bit
        with pytest.raises(FrameShapeError, match="reserved bits"):
            frame_shape(bytes(bad), LIMIT)


def test_a_zero_dictionary_id_of_each_width_is_read_past():
    """A dictionary id of 0 means none: 1, 2 or 4 zero bytes, read past to the content size."""
    frame = zstandard.ZstdCompressor().compress(TEXT)
    assert frame[4] & 3 == 0
    rest = 5 + (0 if frame[4] >> 5 & 1 else 1)
    for flag, width in ((1, 1), (2, 2), (3, 4)):
        with_id = frame[:4] + bytes([frame[4] | flag]) + frame[5:rest] + bytes(width) + frame[rest:]
        assert frame_shape(with_id, LIMIT) == (len(TEXT), len(TEXT))
        assert decoded(with_id, len(TEXT)) == TEXT


def test_a_frame_that_does_not_declare_its_size_is_refused():
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(TEXT)
    assert frame[4] >> 6 == 0 and not frame[4] >> 5 & 1
    with pytest.raises(FrameShapeError, match="does not declare its content size"):
        frame_shape(frame, LIMIT)


def test_truncation_in_the_header_and_in_a_block_header_are_told_apart():
    frame = zstandard.ZstdCompressor().compress(TEXT)
    fhd = frame[4]
    single = fhd >> 5 & 1
    header = 5 + (0 if single else 1) + ((1 if single else 0), 2, 4, 8)[fhd >> 6]
    with pytest.raises(FrameShapeError, match="the frame header is truncated"):
        frame_shape(frame[:header - 1], LIMIT)
    for cut in (0, 1, 2):  # the header whole, then none, one or two of a block header's three bytes
        with pytest.raises(FrameShapeError, match="ends inside a block header"):
            frame_shape(frame[:header + cut], LIMIT)


def test_a_block_of_the_largest_size_is_accepted_and_one_byte_more_is_not():
    frame = zstandard.ZstdCompressor(level=1).compress(NOISE)
    content, window = frame_shape(frame, LIMIT)
    assert content == len(NOISE) and window == len(NOISE)
    assert decoded(frame, len(NOISE)) == NOISE
    header = 5 + (0 if frame[4] >> 5 & 1 else 1) + ((1 if frame[4] >> 5 & 1 else 0), 2, 4, 8)[frame[4] >> 6]
    first = int.from_bytes(frame[header:header + 3], "little")
    assert first >> 1 & 3 == 0 and first >> 3 == MAX_BLOCK == 128 * 1024  # a raw block of 128 KiB
    bad = bytearray(frame)
    bad[header:header + 3] = ((MAX_BLOCK + 1) << 3 | (first & 7)).to_bytes(3, "little")
    with pytest.raises(FrameShapeError, match=f"a block of {MAX_BLOCK + 1} bytes, over the {MAX_BLOCK}-byte limit"):
        frame_shape(bytes(bad), LIMIT)


def test_a_frame_of_valid_shape_whose_blocks_do_not_decode_is_corrupt():
    frame = bytearray(zstandard.ZstdCompressor(level=19).compress(TEXT + bytes(range(256)) * 8))
    size = len(TEXT) + 256 * 8
    frame_shape(bytes(frame), LIMIT)
    bad = bytearray(frame)
    at = len(bad) - 4
    bad[at:at + 2] = bytes(b ^ 0xFF for b in bad[at:at + 2])  # inside the last compressed block
    frame_shape(bytes(bad), LIMIT)  # the shape still holds
    with pytest.raises(CodecError, match="zstd"):
        decoded(bytes(bad), size)


@pytest.mark.parametrize("lie", [-1, 1])
def test_a_frame_whose_declared_size_is_not_its_content_is_corrupt(lie):
    """The content size in the header, one byte short or long, with the buffer sized to it: libzstd refuses
    either (codecs' own length check after it is a second guard)."""
    frame = bytearray(zstandard.ZstdCompressor().compress(TEXT))
    assert frame[4] >> 6 == 1 and frame[4] >> 5 & 1  # single segment, a 2-byte content size (stored - 256)
    frame[5:7] = (len(TEXT) + lie - 256).to_bytes(2, "little")
    with pytest.raises(CodecError, match="zstd stream is corrupt"):
        decoded(bytes(frame), len(TEXT) + lie)
