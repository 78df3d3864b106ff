"""Frame decoders, one per codec name in the manifest.

A decoder checks a frame's codec-specific manifest fields up front (`check`), then decodes one frame's
stored bytes into a caller-provided buffer of exactly the frame's raw length (`decode_into`). Decoders never
allocate from sizes a bundle declares: the output buffer is the limit, and a stream that would overrun it
or stop short of it is an error.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, TypeGuard

import numpy as np
import zstandard

from .format import MAX_ZSTD_WINDOW, PLANE_CODECS, PLANE_WIDTHS, UINT_OF_WIDTH, Codec
from .zstdframe import FrameShapeError, frame_shape


class CodecError(ValueError):
    """A frame's stored bytes do not decode to its declared raw length."""


class Decoder(Protocol):
    name: str
    frame_keys: frozenset[str]

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        """A problem with the frame's codec-specific fields, or None."""

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        """Decode `payload` into `out`, which has exactly the frame's raw length."""


_local = threading.local()


def zstd_decompressor() -> zstandard.ZstdDecompressor:
    """A per-thread decompressor that refuses frames asking for more than MAX_ZSTD_WINDOW of memory."""
    d = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
    return d


def zstd_decode_into(payload: memoryview, out: memoryview) -> None:
    """Decode exactly one zstd frame whose header declares len(out) bytes of content, into `out`. The frame's
    shape (one frame, nothing after it, a window within the limit) is checked first (runtime/zstdframe.py)."""
    try:
        declared, _ = frame_shape(payload, MAX_ZSTD_WINDOW)
    except FrameShapeError as e:
        raise CodecError(f"not exactly one zstd frame: {e}") from None
    if declared != len(out):
        raise CodecError(f"zstd frame declares {declared} bytes of content, expected {len(out)}")
    if not len(out):
        return
    try:
        reader = zstd_decompressor().stream_reader(payload, read_across_frames=False)
        filled = 0
        while filled < len(out):
            n = reader.readinto(out[filled:])
            if not n:
                break
            filled += n
        if filled != len(out) or reader.read(1):
            raise CodecError(f"zstd frame decoded to a length other than the declared {len(out)} bytes")
    except zstandard.ZstdError as e:
        raise CodecError(f"zstd stream is corrupt ({e})") from None


class RawDecoder:
    name = Codec.RAW
    frame_keys: frozenset[str] = frozenset()

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        if frame["length"] != frame["raw_length"]:
            return f"raw frame stores {frame['length']} bytes for {frame['raw_length']} raw bytes"
        return None

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        out[:] = payload


class ZstdDecoder:
    name = Codec.ZSTD
    frame_keys: frozenset[str] = frozenset()

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        return None

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        zstd_decode_into(payload, out)


# Plane scratch kept per thread between frames: one plane of a default 1 MiB frame fits. Frames with larger
# planes (a writer may use up to 16 MiB frames) get a buffer of their own that is freed after the frame.
SCRATCH_KEEP = 512 * 1024


def plane_scratch(nbytes: int) -> memoryview:
    """A buffer of at least `nbytes`: this thread's reused one when small enough, else a fresh one."""
    if nbytes > SCRATCH_KEEP:
        return memoryview(bytearray(nbytes))
    buf = getattr(_local, "plane", None)
    if buf is None:
        buf = _local.plane = bytearray(SCRATCH_KEEP)
    return memoryview(buf)


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int


class PlanesDecoder:
    """Byte planes (docs/FORMAT.md, "The planes codec"): each element, rotated left by `rotate` bits, was split
    into its bytes; plane k holds byte k (least significant first) of every element, stored raw or as one
    zstd frame. Decoding rebuilds each element from its planes, most significant first, with whole-array
    shifts and ors straight into `out`, then rotates it back; the only scratch is one plane, reused."""

    name = Codec.PLANES
    frame_keys = frozenset({"rotate", "planes"})

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        if itemsize not in PLANE_WIDTHS:
            return f"the planes codec needs elements of {'/'.join(map(str, PLANE_WIDTHS))} bytes, not {itemsize}"
        rotate, planes = frame.get("rotate"), frame.get("planes")
        if not _is_int(rotate) or not 0 <= rotate < 8 * itemsize:
            return f"rotate must be an integer in [0, {8 * itemsize - 1}], got {str(rotate)[:40]}"
        if not isinstance(planes, list) or len(planes) != itemsize:
            return f"planes must list {itemsize} [codec, length] pairs, one per byte of the element"
        plane_raw = frame["raw_length"] // itemsize
        if frame["raw_length"] % itemsize:
            return f"raw_length {frame['raw_length']} is not a multiple of the {itemsize}-byte element"
        total = 0
        for k, plane in enumerate(planes):
            if (not isinstance(plane, list) or len(plane) != 2 or plane[0] not in PLANE_CODECS
                    or not _is_int(plane[1]) or plane[1] < 1):
                return f"planes[{k}] must be [codec, length] with codec in {list(PLANE_CODECS)} and length >= 1"
            if plane[0] == Codec.RAW and plane[1] != plane_raw:
                return f"raw plane {k} stores {plane[1]} bytes for {plane_raw} raw bytes"
            total += plane[1]
        if total != frame["length"]:
            return f"planes store {total} bytes but the frame's length is {frame['length']}"
        return None

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        planes = frame["planes"]
        width = len(planes)
        count = len(out) // width
        if len(out) % width or sum(length for _, length in planes) != len(payload):
            raise CodecError("the planes do not add up to the frame's stored and raw lengths")
        elements = np.frombuffer(out, UINT_OF_WIDTH[width])
        starts = [0]
        for _, length in planes:
            starts.append(starts[-1] + length)
        buffer = plane_scratch(max(count, width))  # the rotation needs room for at least one element
        scratch = buffer[:count]
        for k in reversed(range(width)):  # most significant byte first: shift the rest up under it
            codec, length = planes[k]
            stored = payload[starts[k]:starts[k] + length]
            if codec == Codec.RAW:
                if length != count:
                    raise CodecError(f"raw plane {k} holds {length} bytes, expected {count}")
                plane = np.frombuffer(stored, np.uint8)
            else:
                zstd_decode_into(stored, scratch)
                plane = np.frombuffer(scratch, np.uint8)
            if k == width - 1:
                np.copyto(elements, plane)
            else:
                np.left_shift(elements, 8, out=elements)
                np.bitwise_or(elements, plane, out=elements)
        if frame["rotate"]:
            _rotate_right(elements, frame["rotate"], buffer)


def _rotate_right(elements: np.ndarray, bits: int, scratch: memoryview) -> None:
    """Rotate each element right by `bits` in place, in chunks that fit `scratch`."""
    kind = elements.dtype
    up, down = kind.type(8 * kind.itemsize - bits), kind.type(bits)
    chunk = max(1, len(scratch) // kind.itemsize)
    tmp = np.frombuffer(scratch, kind, count=min(chunk, len(elements)))
    for start in range(0, len(elements), chunk):
        part = elements[start:start + chunk]
        carry = tmp[:len(part)]
        np.left_shift(part, up, out=carry)
        np.right_shift(part, down, out=part)
        np.bitwise_or(part, carry, out=part)


DECODERS: dict[str, Decoder] = {d.name: d for d in (RawDecoder(), ZstdDecoder(), PlanesDecoder())}
