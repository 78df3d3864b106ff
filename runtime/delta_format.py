"""Delta format v1: its constants, limits and errors (docs/FORMAT.md, "Deltas").

A delta turns one exact bundle (the base) into another (the result), byte for byte. This module is the
single source of truth for its magic, header layout and limits, as runtime/format.py is for bundles.
"""

from __future__ import annotations

import struct

from .errors import EdgepackError

DELTA_MAGIC = b"\x89EPDELT\n"
DELTA_VERSION = 1
SUPPORTED_DELTA_VERSIONS = (1,)
DELTA_FORMAT_NAME = "edgepack-delta"

# Header: magic, u32 version, u32 flags, u64 index offset, u64 index length, 32-byte SHA-256 of the index
# as stored. 64 bytes in all; the payloads run from DELTA_DATA_START to the index, which ends the file.
DELTA_HEADER = struct.Struct("<8sIIQQ32s")
DELTA_DATA_START = DELTA_HEADER.size  # 64
DELTA_FLAG_INDEX_ZSTD = 1  # the stored index is one zstd frame whose content is the JSON
DELTA_KNOWN_FLAGS = DELTA_FLAG_INDEX_ZSTD
MAX_INDEX_BYTES = 64 * 1024 * 1024

# Blob operations: how the result's stored bytes of one blob are made.
OP_COPY = "copy"        # the base blob's stored bytes, unchanged
OP_LITERAL = "literal"  # stored bytes carried in the delta
OP_DIFF = "diff"        # decoded bytes rebuilt from the base tensor and a coded difference, then re-encoded
OPS = (OP_COPY, OP_LITERAL, OP_DIFF)

# How a diff frame combines with the base's bytes, element by element (elements of the dtype's width, read
# as little-endian unsigned integers): new = old XOR d, new = old + unzigzag(d) (mod 2**bits), or new = d.
TRANSFORM_XOR = "xor"
TRANSFORM_ADD = "add"  # new = old + the zigzag-decoded difference
TRANSFORM_NONE = "none"
TRANSFORMS = (TRANSFORM_XOR, TRANSFORM_ADD, TRANSFORM_NONE)
# Element widths a transform works in (bytes); other dtypes (4-bit, complex128) use width 1.
TRANSFORM_WIDTHS = (1, 2, 4, 8)

# zstd settings a delta may ask the device to re-encode with: a level, or explicit parameters. The packager
# emits levels and one explicit set, the order0 mode (strategy 1, "fast"); explicit parameters are bounded to
# the fast strategies (1 fast, 2 dfast) so that a delta cannot make the device re-encode with a search
# (such as strategy 9 with search_log 24, far slower than any level the packager uses).
ZSTD_LEVEL_RANGE = (1, 19)
ZSTD_PARAM_RANGES: dict[str, tuple[int, int]] = {
    "strategy": (1, 2), "window_log": (10, 24), "chain_log": (6, 24), "hash_log": (6, 24),
    "search_log": (1, 9), "min_match": (3, 7), "target_length": (0, 1 << 17),
}
MAX_ZSTD_SETTINGS = 16
# A result may be at most RESULT_GROWTH times the base and the delta together, plus RESULT_SLACK bytes: its
# bytes come from the base (copies, diffs against a base blob) and the delta (literals, differences), so
# only a delta that copies the same base blobs many times (a small file writing a huge one) goes past it.
RESULT_GROWTH = 4
RESULT_SLACK = 1 << 20


class DeltaError(EdgepackError):
    """A delta cannot be applied: not a delta, the wrong base, corrupt, or made for another version."""


class BadDeltaMagic(DeltaError):
    def __init__(self, path: str):
        super().__init__(f"{path}: not an edgepack delta (wrong magic bytes; expected {DELTA_MAGIC!r})")


class UnsupportedDeltaVersion(DeltaError):
    def __init__(self, path: str, version: int):
        super().__init__(f"{path}: delta format version {version} is not supported by this runtime (supported: "
                         f"{', '.join(map(str, SUPPORTED_DELTA_VERSIONS))}); upgrade edgepack or ask for a v1 delta")


class TruncatedDelta(DeltaError):
    def __init__(self, path: str, expected: int, actual: int):
        super().__init__(f"{path}: truncated: the delta declares {expected} bytes but the file has {actual}; "
                         "copy it again")


class CorruptDelta(DeltaError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: corrupt delta: {problem}; download it again")


class InvalidDelta(DeltaError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: invalid delta: {problem}")


class WrongBase(DeltaError):
    def __init__(self, path: str, base: str, expected: str, actual: str):
        super().__init__(f"{path}: this delta applies to the bundle whose manifest has SHA-256 {expected}, but "
                         f"{base} has {actual}; apply it to that exact bundle, or get the full bundle")


class ResultMismatch(DeltaError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: the rebuilt bundle is not the one the delta names: {problem}; nothing was "
                         "written")
