"""Lossless encoding of a tensor's raw bytes into frames, with the codec chosen per tensor.

A tensor is split into frames of at most `frame_bytes` raw bytes (a multiple of its element size), each
compressed on its own so the runtime can decode frames on several threads. Each candidate codec is tried
and the smallest kept; a codec that cannot shrink the data loses to `raw`. Output is deterministic: the
same bytes and options give the same frames whatever the number of threads.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zstandard

from edgepack.runtime.codecs import DECODERS
from edgepack.runtime.format import DEFAULT_FRAME_BYTES, DTYPES, Codec


@dataclass
class EncodedFrame:
    payload: bytes
    raw_length: int
    sha256: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Encoded:
    codec: str
    frames: list[EncodedFrame]
    raw_length: int
    sha256: str

    @property
    def length(self) -> int:
        return sum(len(f.payload) for f in self.frames)


_local = threading.local()


def zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """A per-thread compressor for `level`; frames always carry their content size."""
    cache = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
    return c


def encode_raw(data: memoryview, dtype: str, level: int) -> tuple[bytes, dict[str, Any]]:
    return bytes(data), {}


def encode_zstd(data: memoryview, dtype: str, level: int) -> tuple[bytes, dict[str, Any]]:
    return zstd_compressor(level).compress(data), {}


# codec name -> frame encoder; each must have a decoder in edgepack.runtime.codecs
ENCODERS = {Codec.RAW: encode_raw, Codec.ZSTD: encode_zstd}
assert set(ENCODERS) <= set(DECODERS)


def candidates(dtype: str) -> list[str]:
    """Codecs worth trying for a dtype, cheapest to decode first (ties keep the earlier one)."""
    return [Codec.RAW, Codec.ZSTD]


def frame_ranges(length: int, dtype: str, frame_bytes: int) -> list[tuple[int, int]]:
    itemsize = max(DTYPES[dtype][2], 1)
    step = max(itemsize, frame_bytes // itemsize * itemsize)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def encode(data: memoryview, dtype: str, level: int = 3, frame_bytes: int = DEFAULT_FRAME_BYTES,
           codecs: list[str] | None = None, pool: ThreadPoolExecutor | None = None) -> Encoded:
    """Encode a tensor's raw bytes with the smallest of `codecs` (default: candidates(dtype))."""
    data = memoryview(data).cast("B")
    ranges = frame_ranges(len(data), dtype, frame_bytes)
    best: Encoded | None = None
    for codec in codecs or candidates(dtype):
        encoder = ENCODERS[codec]

        def one(r: tuple[int, int]) -> tuple[bytes, dict[str, Any]]:
            return encoder(data[r[0]:r[1]], dtype, level)

        results = list(pool.map(one, ranges)) if pool is not None and len(ranges) > 1 else [one(r) for r in ranges]
        size = sum(len(p) for p, _ in results)
        if best is None or size < best.length:
            frames = [EncodedFrame(p, b - a, "", params) for (p, params), (a, b) in zip(results, ranges)]
            best = Encoded(codec, frames, len(data), "")
    assert best is not None
    whole = hashlib.sha256()
    for frame, (a, b) in zip(best.frames, ranges):
        frame.sha256 = hashlib.sha256(data[a:b]).hexdigest()
        whole.update(data[a:b])
    best.sha256 = whole.hexdigest()
    return best
