"""Frame decoders, one per codec name in the manifest.

A decoder checks a frame's codec-specific manifest fields up front (`check`), then decodes one frame's
stored bytes into a caller-provided buffer of exactly the frame's raw length (`decode_into`). Decoders never
allocate from sizes a bundle declares: the output buffer is the limit, and a stream that would overrun it
or stop short of it is an error.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import zstandard

from .format import MAX_ZSTD_WINDOW, Codec


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
    """Decode exactly one zstd frame whose header declares len(out) bytes of content, into `out`."""
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as e:
        raise CodecError(f"not a zstd frame ({e})") from None
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
    frame_keys = frozenset()

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        if frame["length"] != frame["raw_length"]:
            return f"raw frame stores {frame['length']} bytes for {frame['raw_length']} raw bytes"
        return None

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        out[:] = payload


class ZstdDecoder:
    name = Codec.ZSTD
    frame_keys = frozenset()

    def check(self, frame: dict[str, Any], itemsize: int) -> str | None:
        return None

    def decode_into(self, payload: memoryview, frame: dict[str, Any], out: memoryview) -> None:
        zstd_decode_into(payload, out)


DECODERS: dict[str, Decoder] = {d.name: d for d in (RawDecoder(), ZstdDecoder())}
