"""Taking a delta apart and putting it back together with its index hash recomputed, so that attack and
fuzz cases reach the checks behind the header's (docs/FORMAT.md, "Deltas")."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from collections.abc import Callable

import zstandard

from edgepack.runtime.delta_format import DELTA_DATA_START, DELTA_FLAG_INDEX_ZSTD, DELTA_HEADER, DELTA_MAGIC


def parts(data: bytes) -> tuple[dict[str, Any], bytes, int]:
    """(index as an object, data section, version) of a well-formed delta."""
    _, version, flags, offset, length, _ = DELTA_HEADER.unpack(data[:DELTA_DATA_START])
    stored = data[offset:offset + length]
    text = zstandard.ZstdDecompressor().decompress(stored) if flags & DELTA_FLAG_INDEX_ZSTD else stored
    return json.loads(text), data[DELTA_DATA_START:offset], version


def assemble(index: dict[str, Any] | bytes, data_section: bytes, version: int = 1, flags: int = 0) -> bytes:
    """A delta with this index (an object, or its bytes as stored) and data, the index hash made to match."""
    text = index if isinstance(index, bytes) else json.dumps(index, separators=(",", ":")).encode()
    header = DELTA_HEADER.pack(DELTA_MAGIC, version, flags, DELTA_DATA_START + len(data_section), len(text),
                               hashlib.sha256(text).digest())
    return header + data_section + text


def edit(data: bytes, change: Callable[[dict[str, Any], bytearray], Any]) -> bytes:
    """The delta with `change(index, data_section)` applied (both may be edited in place) and resealed."""
    index, section, version = parts(data)
    section = bytearray(section)
    change(index, section)
    return assemble(index, bytes(section), version)
