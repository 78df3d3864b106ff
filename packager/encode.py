"""Lossless encoding of a tensor's raw bytes into frames, with the codec chosen per tensor.

A tensor is split into frames of at most `frame_bytes` raw bytes (a multiple of its element size), each
compressed on its own so the runtime can decode frames on several threads. The codec is chosen by trying
every candidate on a sample of the tensor (the whole tensor when it is small) and keeping the smallest, so
packaging compresses each tensor once, plus the trials on at most SAMPLE_BYTES of it. Output is deterministic: the
same bytes and options give the same
frames whatever the number of threads.

zstd runs in one of two modes (the decoder cannot tell them apart; both write plain zstd frames):
`lz` is zstd at the chosen level, for data with repeats (graphs, integers, pruned or quantized weights);
`order0` tunes zstd so that it finds almost no matches and codes nearly every byte as a Huffman-coded
literal, which is what i.i.d. bytes such as float exponents need (zstd's matches on them cost more bits
than they save: the exponent plane of N(0, 1/1024) float32 weights, which level 3 codes at 0.403 of its
size, codes at 0.326 with order0, against 0.323 for an ideal Huffman code and 0.318 for its entropy).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import zstandard

from edgepack.runtime.codecs import DECODERS
from edgepack.runtime.format import DEFAULT_FRAME_BYTES, DTYPES, Codec

from .planes import PLANE_ROTATIONS, split_planes

RAW, LZ, ORDER0 = "raw", "lz", "order0"  # how a frame or a plane is stored: as is, or by zstd in a mode
ZSTD_MODES = (LZ, ORDER0)

# The sample the codec is chosen on: the whole tensor up to SAMPLE_BYTES, else SAMPLE_SLICES slices spread
# evenly over it, each SAMPLE_BYTES / SAMPLE_SLICES long.
SAMPLE_BYTES = 256 * 1024
SAMPLE_SLICES = 4
# order0 mode's zstd parameters (zstd_compressor); deltas name them so a device can re-encode the same bytes.
# Matches of at least 7 bytes, looked up in a 64-entry table: on i.i.d. bytes almost none are found, so
# zstd's Huffman literal coder does the work; 128 KiB blocks keep table overheads small.
ORDER0_PARAMS = {"strategy": zstandard.STRATEGY_FAST, "window_log": 17, "chain_log": 6, "hash_log": 6,
                 "search_log": 1, "min_match": 7}
# A plane that order0 zstd stores in more than this fraction of its size is treated as noise.
NOISE = 0.99


@dataclass(frozen=True)
class Choice:
    """How to encode a tensor: the codec, then per part (the frame for zstd, each plane for planes) the way
    it is stored, and for planes the bits each element is rotated left by before it is split."""

    codec: str
    modes: tuple[str, ...] = ()
    rotate: int = 0


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
    choice: Choice | None = None

    @property
    def length(self) -> int:
        return sum(len(f.payload) for f in self.frames)


_local = threading.local()


def zstd_compressor(level: int, mode: str = LZ) -> zstandard.ZstdCompressor:
    """A per-thread compressor for `level` and `mode`; frames always carry their content size."""
    cache = getattr(_local, "zstd", None)
    if cache is None:
        cache = _local.zstd = {}
    key = (level, mode)
    c = cache.get(key)
    if c is None:
        if mode == ORDER0:
            params = zstandard.ZstdCompressionParameters(**ORDER0_PARAMS, write_content_size=True,
                                                         write_checksum=False)
            c = zstandard.ZstdCompressor(compression_params=params)
        else:
            c = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        cache[key] = c
    return c


def compress(data: Any, mode: str, level: int) -> bytes:
    return zstd_compressor(level, mode).compress(data)


def encode_raw(data: memoryview, dtype: str, level: int, choice: Choice) -> tuple[bytes, dict[str, Any]]:
    return bytes(data), {}


def encode_zstd(data: memoryview, dtype: str, level: int, choice: Choice) -> tuple[bytes, dict[str, Any]]:
    return compress(data, choice.modes[0] if choice.modes else LZ, level), {}


def encode_planes(data: memoryview, dtype: str, level: int, choice: Choice) -> tuple[bytes, dict[str, Any]]:
    """Each plane compressed in its chosen mode, or stored raw where that is not smaller."""
    parts, planes = [], []
    for plane, mode in zip(split_planes(data, DTYPES[dtype][2], choice.rotate), choice.modes):
        stored = compress(plane, mode, level) if mode != RAW else None
        if stored is None or len(stored) >= len(plane):
            parts.append(plane.tobytes())
            planes.append([Codec.RAW, len(plane)])
        else:
            parts.append(stored)
            planes.append([Codec.ZSTD, len(stored)])
    return b"".join(parts), {"rotate": choice.rotate, "planes": planes}


# codec name -> frame encoder; each must have a decoder in edgepack.runtime.codecs
ENCODERS: dict[str, Callable[[memoryview, str, int, Choice], tuple[bytes, dict[str, Any]]]] = {
    Codec.RAW: encode_raw, Codec.ZSTD: encode_zstd, Codec.PLANES: encode_planes}
assert set(ENCODERS) <= set(DECODERS)


def candidates(dtype: str) -> list[str]:
    """Codecs worth trying for a dtype, cheapest to decode first (ties keep the earlier one)."""
    return [Codec.RAW, Codec.ZSTD] + ([Codec.PLANES] if dtype in PLANE_ROTATIONS else [])


def sample(data: memoryview, itemsize: int) -> memoryview | bytes:
    """The bytes the codec is chosen on: all of `data` if small, else slices spread evenly over it."""
    if len(data) <= SAMPLE_BYTES:
        return data
    size = SAMPLE_BYTES // SAMPLE_SLICES
    starts = [(len(data) - size) * i // (SAMPLE_SLICES - 1) // itemsize * itemsize for i in range(SAMPLE_SLICES)]
    return b"".join(data[s:s + size] for s in starts)


def trials(codec: str, data: memoryview | bytes, dtype: str, level: int) -> list[tuple[int, Choice]]:
    """(stored size of `data`, choice) for each way `codec` could encode it."""
    if codec == Codec.RAW:
        return [(len(data), Choice(Codec.RAW))]
    if codec == Codec.ZSTD:
        return [(len(compress(data, mode, level)), Choice(Codec.ZSTD, (mode,))) for mode in ZSTD_MODES]
    if codec == Codec.PLANES:
        if dtype not in PLANE_ROTATIONS:
            raise ValueError(f"the planes codec does not apply to {dtype} tensors")
        out = []
        for rotate in PLANE_ROTATIONS[dtype]:
            stored = [plane_trial(plane, level) for plane in split_planes(data, DTYPES[dtype][2], rotate)]
            out.append((sum(size for size, _ in stored), Choice(Codec.PLANES, tuple(m for _, m in stored), rotate)))
        return out
    raise ValueError(f"no encoder for codec {codec!r}")


def plane_trial(plane, level: int) -> tuple[int, str]:
    """(stored size, mode) of the best way to store one plane. A plane order0 cannot shrink by NOISE is
    mantissa noise and stored raw without trying lz: repeats it might hold, the whole-tensor zstd finds."""
    size, mode = len(compress(plane, ORDER0, level)), ORDER0
    if size < NOISE * len(plane):
        size, mode = min((size, mode), (len(compress(plane, LZ, level)), LZ))
    return (size, mode) if size < len(plane) else (len(plane), RAW)


def choose(data: memoryview, dtype: str, level: int, codecs: list[str]) -> Choice:
    """The choice that stores a sample of `data` in the fewest bytes; ties keep the earlier candidate."""
    part = sample(data, max(DTYPES[dtype][2], 1))
    options = [option for codec in codecs for option in trials(codec, part, dtype, level)]
    return min(enumerate(options), key=lambda o: (o[1][0], o[0]))[1][1]


def frame_ranges(length: int, dtype: str, frame_bytes: int) -> list[tuple[int, int]]:
    itemsize = max(DTYPES[dtype][2], 1)
    step = max(itemsize, frame_bytes // itemsize * itemsize)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def encode(data: memoryview, dtype: str, level: int = 3, frame_bytes: int = DEFAULT_FRAME_BYTES,
           codecs: list[str] | None = None, pool: ThreadPoolExecutor | None = None) -> Encoded:
    """Encode a tensor's raw bytes with the best of `codecs` (default: candidates(dtype)) on a sample."""
    data = memoryview(data).cast("B")
    ranges = frame_ranges(len(data), dtype, frame_bytes)
    choice = choose(data, dtype, level, codecs or candidates(dtype)) if ranges else Choice(Codec.RAW)
    encoder = ENCODERS[choice.codec]

    def one(r: tuple[int, int]) -> EncodedFrame:
        raw = data[r[0]:r[1]]
        payload, params = encoder(raw, dtype, level, choice)
        return EncodedFrame(payload, r[1] - r[0], hashlib.sha256(raw).hexdigest(), params)

    frames = list(pool.map(one, ranges)) if pool is not None and len(ranges) > 1 else [one(r) for r in ranges]
    whole = hashlib.sha256()
    for a, b in ranges:
        whole.update(data[a:b])
    return Encoded(choice.codec, frames, len(data), whole.hexdigest(), choice)
