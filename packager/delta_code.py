"""Coding one changed tensor against its old version, frame by frame (docs/FORMAT.md, "Deltas").

Fine-tuning moves the low mantissa bits of a float and leaves its sign, exponent and high mantissa bytes
mostly as they were; re-quantizing moves int8 values by a step or two. So each element of the new tensor is
coded as a difference from the old one, taken in the dtype's width: XOR, or the integer difference
(zigzag-mapped, so that a small step down is as cheap as a small step up), or the new value itself, and
the difference is stored with the bundle's own codecs (byte planes, zstd, raw). The transform and codec
are chosen per tensor, like the bundle's codecs, by the size they give.

The device must then store the rebuilt frame exactly as the new bundle does. Raw frames and raw planes
follow from the decoded bytes; a zstd part is re-encoded with the zstd setting that reproduces it, found
here by trying the settings the encoder uses, or, when none does, carried in the delta as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

from edgepack.runtime.delta import split_planes, zstd_compressor
from edgepack.runtime.delta_format import TRANSFORM_ADD, TRANSFORM_NONE, TRANSFORM_XOR
from edgepack.runtime.delta_reader import transform_width
from edgepack.runtime.format import Codec
from edgepack.runtime.manifest import Frame, TensorEntry

from .encode import ENCODERS, ORDER0_PARAMS, candidates, choose

_UINT = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}
_NP: dict[int, np.dtype[Any]] = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
TRANSFORMS = (TRANSFORM_ADD, TRANSFORM_XOR, TRANSFORM_NONE)


@dataclass
class Settings:
    """The zstd settings a delta lists, in the order they were first needed."""

    tried: list[dict[str, int]]
    used: list[dict[str, int]] = field(default_factory=list)
    _compressors: dict[int, zstandard.ZstdCompressor] = field(default_factory=dict)

    def find(self, data: Any, stored: bytes) -> int | None:
        """The index (in `used`) of a setting whose compression of `data` is exactly `stored`, or None."""
        order = sorted(range(len(self.tried)), key=lambda i: self.tried[i] not in self.used)
        for i in order:
            c = self._compressors.get(i)
            if c is None:
                c = self._compressors[i] = zstd_compressor(self.tried[i])
            if c.compress(data) == stored:
                if self.tried[i] not in self.used:
                    self.used.append(self.tried[i])
                return self.used.index(self.tried[i])
        return None


def settings_for(levels: list[int]) -> Settings:
    """The zstd settings worth trying: the encoder's lz mode at the bundle's level (and the default 3), and
    its order0 mode."""
    tried = [{"level": level} for level in dict.fromkeys(levels + [3]) if 1 <= level <= 19]
    return Settings(tried + [dict(ORDER0_PARAMS)])


@dataclass
class CodedFrame:
    entry: dict[str, Any]      # the frame's index entry
    payloads: list[bytes]      # its difference, then its literal parts

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.payloads)


@dataclass
class CodedTensor:
    transform: str
    frames: list[CodedFrame]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.frames)


def difference(old: np.ndarray, new: np.ndarray, transform: str) -> np.ndarray:
    """The stored difference d (unsigned, the dtype's width) such that applying `transform` to old and d
    gives new."""
    if transform == TRANSFORM_XOR:
        return np.bitwise_xor(old, new)
    if transform == TRANSFORM_ADD:  # zigzag: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
        step = np.subtract(new, old)
        kind = step.dtype.type
        sign = np.right_shift(step, kind(8 * step.itemsize - 1))
        return np.bitwise_xor(np.left_shift(step, kind(1)), np.negative(sign))
    return new.copy()


def code_tensor(old: bytes | memoryview, new: bytes | memoryview, entry: TensorEntry, stored: list[bytes],
                settings: Settings, level: int) -> CodedTensor:
    """The smallest coding of `new` against `old` (both decoded) over the transforms; `stored` holds the new
    bundle's stored bytes of each frame."""
    width = transform_width(entry.dtype)
    kind = _NP[width]
    a, b = np.frombuffer(old, kind), np.frombuffer(new, kind)
    parts = [reencode(entry, f, bytes(new[f.raw_offset:f.raw_offset + f.raw_length]), s, settings)
             for f, s in zip(entry.frames, stored)]
    best: CodedTensor | None = None
    for transform in TRANSFORMS:
        d = difference(a, b, transform)
        coded = _code_frames(d.view(np.uint8), entry.frames, width, level, parts, transform)
        if best is None or coded.size < best.size:
            best = coded
    assert best is not None
    return best


def _code_frames(d: np.ndarray, frames: tuple[Frame, ...], width: int, level: int,
                 parts: list[tuple[list[dict[str, int]], list[bytes]]], transform: str) -> CodedTensor:
    dtype = _UINT[width]
    data = d.data
    choice = choose(data, dtype, level, candidates(dtype))
    out = []
    for f, (recipe, literals) in zip(frames, parts):
        payload, params = ENCODERS[choice.codec](data[f.raw_offset:f.raw_offset + f.raw_length], dtype, level, choice)
        entry = {"codec": choice.codec, "length": len(payload), **params, "parts": recipe}
        out.append(CodedFrame(entry, [payload, *literals]))
    return CodedTensor(transform, out)


def reencode(entry: TensorEntry, frame: Frame, raw: bytes, stored: bytes,
             settings: Settings) -> tuple[list[dict[str, int]], list[bytes]]:
    """How the device re-encodes one frame's zstd parts: (the parts' index entries, the literal bytes)."""
    if entry.codec == Codec.ZSTD:
        pieces = [(raw, stored)]
    elif entry.codec == Codec.PLANES:
        planes = frame.params["planes"]
        pieces, at = [], 0
        for (codec, length), plane in zip(planes, split_planes(bytearray(raw), len(planes), frame.params["rotate"])):
            if codec == Codec.ZSTD:
                pieces.append((plane, stored[at:at + length]))
            at += length
    else:
        return [], []
    recipe: list[dict[str, int]] = []
    literals: list[bytes] = []
    for data, want in pieces:
        found = settings.find(data, want)
        if found is None:
            recipe.append({"literal": len(want)})
            literals.append(want)
        else:
            recipe.append({"zstd": found})
    return recipe, literals
