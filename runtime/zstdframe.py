"""The shape of one zstd frame, read from its header and block headers before any of it is decoded.

zstd's decoder accepts more than edgepack writes: skippable frames (bytes no decoder looks at, so hidden from
every hash), several frames back to back, and a window far larger than the content when it decodes into a
buffer big enough for the content (the window limit is checked only when it streams). A chunk of a bundle
is exactly one zstd frame (RFC 8878, section 3.1.1), with no dictionary, whose window is at most the limit
or, for a single-segment frame, its content; every byte of the chunk belongs to that frame.
"""

from __future__ import annotations

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK, SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_FCS_BYTES = (0, 2, 4, 8)   # by Frame_Content_Size_flag; 0 means 1 byte when Single_Segment_flag is set
_DID_BYTES = (0, 1, 2, 4)   # by Dictionary_ID_flag
_RESERVED_BLOCK = 3
MAX_BLOCK = 128 * 1024


class FrameShapeError(ValueError):
    """The bytes are not exactly one zstd frame edgepack accepts."""


def window_size(descriptor: int) -> int:
    """The window a Window_Descriptor byte declares (RFC 8878, 3.1.1.1.2)."""
    base = 1 << (10 + (descriptor >> 3))
    return base + (base >> 3) * (descriptor & 7)


def frame_shape(data: bytes | memoryview, max_window: int) -> tuple[int, int]:
    """(declared content size, window size) of the single zstd frame that `data` must be, exactly.
    Walks the block headers (a few per MiB) to find where the frame ends; raises FrameShapeError."""
    n = len(data)
    if n < 6:
        raise FrameShapeError(f"{n} bytes are too short for a zstd frame")
    magic = int.from_bytes(data[:4], "little")
    if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
        raise FrameShapeError("a skippable frame (bytes no decoder reads) is not allowed")
    if magic != ZSTD_MAGIC:
        raise FrameShapeError(f"wrong magic {magic:#010x}")
    fhd = data[4]
    single, checksum, did_flag, fcs_flag = fhd >> 5 & 1, fhd >> 2 & 1, fhd & 3, fhd >> 6
    if fhd & 0x18:  # bit 3 reserved, bit 4 unused: both must be zero
        raise FrameShapeError("reserved bits of the frame header descriptor are set")
    pos = 5
    window = 0
    if not single:
        window = window_size(data[pos])
        pos += 1
    did_bytes = _DID_BYTES[did_flag]
    if did_bytes and any(data[pos:pos + did_bytes]):
        raise FrameShapeError("the frame needs a dictionary")
    pos += did_bytes
    fcs_bytes = _FCS_BYTES[fcs_flag] or (1 if single else 0)
    if not fcs_bytes:
        raise FrameShapeError("the frame does not declare its content size")
    if pos + fcs_bytes > n:
        raise FrameShapeError("the frame header is truncated")
    content = int.from_bytes(data[pos:pos + fcs_bytes], "little") + (256 if fcs_bytes == 2 else 0)
    pos += fcs_bytes
    if single:
        window = content
    elif window > max_window:
        raise FrameShapeError(f"the frame asks for a {window}-byte window, over the limit of {max_window}")
    block_limit = min(window, MAX_BLOCK) if window else MAX_BLOCK
    while True:
        if pos + 3 > n:
            raise FrameShapeError("the frame ends inside a block header")
        header = int.from_bytes(data[pos:pos + 3], "little")
        last, kind, size = header & 1, header >> 1 & 3, header >> 3
        if kind == _RESERVED_BLOCK:
            raise FrameShapeError("a block of the reserved type")
        if size > block_limit:
            raise FrameShapeError(f"a block of {size} bytes, over the {block_limit}-byte limit")
        pos += 3 + (1 if kind == 1 else size)  # an RLE block stores one byte
        if last:
            break
    pos += 4 if checksum else 0
    if pos > n:
        raise FrameShapeError("the frame is truncated")
    if pos < n:
        raise FrameShapeError(f"{n - pos} bytes follow the frame (another frame, or hidden data)")
    return content, window
