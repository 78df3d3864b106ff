"""Bundle format v1: the single source of truth for its constants, limits and enums.

docs/FORMAT.md describes the layout in prose; nothing else in edgepack spells a magic number, a limit
or a codec name. The reader enforces every limit here before it allocates anything.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

MAGIC = b"\x89EDGEPK\n"
FORMAT_NAME = "edgepack"  # the manifest's "format" field
VERSION = 1
SUPPORTED_VERSIONS = (1,)

# Fixed header: magic, u32 version, u32 flags, u64 manifest offset, u64 manifest length,
# u64 signature length. The data section runs from DATA_START to the manifest; the signature follows the
# manifest and ends the file.
HEADER = struct.Struct("<8sIIQQQ")
HEADER_SIZE = HEADER.size  # 40
DATA_START = 64
# Header flags. A reader refuses a bundle with a flag it does not know.
FLAG_MANIFEST_ZSTD = 1  # the stored manifest is one zstd frame whose content is the JSON
KNOWN_FLAGS = FLAG_MANIFEST_ZSTD

# Every blob in the data section starts at a multiple of ALIGNMENT; gaps between blobs are zero bytes and
# shorter than MAX_GAP, so a writer may page-align an uncompressed tensor for use in place.
ALIGNMENT = 64
MAX_GAP = 4096

# Hard limits, checked before any allocation.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_SIGNATURE_BYTES = 4096
MAX_TENSORS = 200_000
MAX_FRAMES = 2_000_000
MAX_FRAME_RAW_BYTES = 16 * 1024 * 1024
MAX_GRAPH_BYTES = 1024 * 1024 * 1024
MAX_TOTAL_RAW_BYTES = 256 * 1024 ** 3
MAX_NAME_BYTES = 4096
MAX_RANK = 32
# JSON nesting of the manifest (the schema needs 5 levels; free-form objects get the rest), and the memory
# parsing it may take: json.loads makes a Python object of 30 to 200 bytes for a few bytes of JSON, so a reader
# bounds what the parse will allocate (runtime/manifest_cost.py) before parsing, and refuses a manifest whose
# bound exceeds MANIFEST_COST_RATIO times its size, or MANIFEST_FREE_COST, whichever is larger. A manifest with
# characters past U+FFFF (raw or as escaped surrogates) may be at most MAX_ASTRAL_MANIFEST_BYTES: CPython
# stores its whole text in 4 bytes per character.
MAX_MANIFEST_DEPTH = 32
MANIFEST_COST_RATIO = 4
MANIFEST_FREE_COST = 64 * 1024 * 1024
MAX_ASTRAL_MANIFEST_BYTES = 4 * 1024 * 1024
# zstd frames may not ask for a window larger than this (a bomb can ask for gigabytes).
MAX_ZSTD_WINDOW = 1 << 24

# The little-endian unsigned integer of each element width in bytes: how byte planes, XOR/ADD deltas and
# rotations view a tensor's raw bytes (codecs, deltas, the packager's plane split).
UINT_OF_WIDTH: dict[int, np.dtype[Any]] = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"),
                                          8: np.dtype("<u8")}

# The signature block that may follow the manifest (docs/FORMAT.md, "Signature"): an algorithm tag, the
# signer's key id (the first bytes of the SHA-256 of its public key), the SHA-256 of the whole data section
# as stored, then the Ed25519 signature of SIGNATURE_CONTEXT + the 40-byte header + the manifest + the
# block's first 48 bytes. The manifest's hashes cover what decoding uses; the data digest covers every
# stored byte (zstd frames have bits a decoder ignores), so that `verify` catches any changed byte.
SIGNATURE_ALGORITHM = b"ed25519\0"
SIGNATURE_KEY_ID_BYTES = 8
SIGNATURE_DATA_DIGEST_BYTES = 32
SIGNATURE_BYTES = 64
SIGNATURE_SIGNED_PREFIX = len(SIGNATURE_ALGORITHM) + SIGNATURE_KEY_ID_BYTES + SIGNATURE_DATA_DIGEST_BYTES  # 48
SIGNATURE_BLOCK_SIZE = SIGNATURE_SIGNED_PREFIX + SIGNATURE_BYTES  # 112
SIGNATURE_CONTEXT = b"edgepack bundle signature v1\0"

# Raw bytes per frame the writer uses by default: large tensors are split so frames decode on several
# threads, and the runtime holds only a few frames in flight (benchmarks/codec.py measures the trade-off).
DEFAULT_FRAME_BYTES = 1024 * 1024

# dtype name (manifest) -> (ONNX TensorProto data type, numpy dtype, itemsize)
DTYPES: dict[str, tuple[int, str, int]] = {
    "float32": (1, "<f4", 4),
    "uint8": (2, "u1", 1),
    "int8": (3, "i1", 1),
    "uint16": (4, "<u2", 2),
    "int16": (5, "<i2", 2),
    "int32": (6, "<i4", 4),
    "int64": (7, "<i8", 8),
    "bool": (9, "?", 1),
    "float16": (10, "<f2", 2),
    "float64": (11, "<f8", 8),
    "uint32": (12, "<u4", 4),
    "uint64": (13, "<u8", 8),
    "complex64": (14, "<c8", 8),
    "complex128": (15, "<c16", 16),
    "bfloat16": (16, "<u2", 2),
    "float8e4m3fn": (17, "u1", 1),
    "float8e4m3fnuz": (18, "u1", 1),
    "float8e5m2": (19, "u1", 1),
    "float8e5m2fnuz": (20, "u1", 1),
    # 4-bit types pack two values per byte; their raw length is ceil(count / 2).
    "uint4": (21, "u1", 0),
    "int4": (22, "u1", 0),
}
ONNX_TO_DTYPE = {code: name for name, (code, _, _) in DTYPES.items()}


def raw_length(dtype: str, shape: list[int] | tuple[int, ...]) -> int:
    """Bytes of a tensor's raw little-endian data, as ONNX lays it out in `raw_data`."""
    count = 1
    for dim in shape:
        count *= dim
    itemsize = DTYPES[dtype][2]
    return (count + 1) // 2 if itemsize == 0 else count * itemsize


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(DTYPES[dtype][1])


def align(offset: int, alignment: int = ALIGNMENT) -> int:
    return (offset + alignment - 1) // alignment * alignment


class Codec:
    """Codec names as they appear in the manifest (docs/FORMAT.md, "Codecs")."""

    RAW = "raw"
    ZSTD = "zstd"
    PLANES = "planes"


# The `planes` codec: element widths it splits into byte planes, and how each plane may be stored.
PLANE_WIDTHS = (2, 4, 8)
PLANE_CODECS = (Codec.RAW, Codec.ZSTD)


# Tensor bindings: how the graph gets a tensor's bytes.
BINDING_INLINE = "inline"      # spliced into the graph stream as the TensorProto's raw_data
BINDING_EXTERNAL = "external"  # handed to onnxruntime as an external initializer (graphs over 2 GB)
BINDING_MAPPED = "mapped"      # stored raw and page-aligned; onnxruntime maps it from the bundle file itself
# The external-data location of an externally bound tensor in the stored graph.
EXTERNAL_LOCATION_PREFIX = "edgepack:"


# Bundle layouts (docs/FORMAT.md, "Layouts"). `compressed`: every tensor coded and streamed to onnxruntime.
# `mapped`: main-graph initializers of at least a threshold stored raw at offsets aligned to a page size, which
# onnxruntime memory-maps from the bundle; the manifest says so in its optional `layout` object.
LAYOUT_COMPRESSED = "compressed"
LAYOUT_MAPPED = "mapped"
LAYOUTS = (LAYOUT_COMPRESSED, LAYOUT_MAPPED)
# Alignments a mapped bundle may declare: page sizes (4 KiB x86 and most ARM kernels; 16 KiB Raspberry Pi 5's
# and Apple's; 64 KiB some ARM server kernels and Windows' allocation granularity).
MAPPED_ALIGNMENTS = (4096, 16384, 65536)
DEFAULT_MAPPED_ALIGNMENT = 4096
DEFAULT_MAPPED_MIN_BYTES = 4096
