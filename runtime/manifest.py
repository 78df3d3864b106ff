"""The manifest: parsed from untrusted bytes into typed records, every field checked before use.

The schema is docs/FORMAT.md's "Manifest" section. Unknown keys in the records the reader interprets
(blobs, tensors, frames) are refused: a reader that ignored a field it does not understand could decode a
tensor wrongly. `target`, `provenance` and `report` are free-form objects the runtime only displays,
except `target`, which load() checks with the profile schema.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from .codecs import DECODERS
from .errors import InvalidManifest, InvalidOffset, LimitExceeded, NoSuchTensor, TooLargeForDevice, UnknownCodec
from .manifest_cost import char_width, escaped_colons, parse_cost, string_colons
from .format import (
    ALIGNMENT, BINDING_EXTERNAL, BINDING_INLINE, BINDING_MAPPED, DATA_START, DTYPES, LAYOUT_COMPRESSED, LAYOUT_MAPPED,
    MAPPED_ALIGNMENTS, MANIFEST_COST_RATIO, MANIFEST_FREE_COST, MAX_ASTRAL_MANIFEST_BYTES,
    MAX_FRAME_RAW_BYTES, MAX_FRAMES, MAX_GAP, MAX_GRAPH_BYTES, MAX_MANIFEST_DEPTH, MAX_NAME_BYTES, MAX_RANK,
    MAX_TENSORS, MAX_TOTAL_RAW_BYTES, raw_length,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_INT = 1 << 62
GRAPH_NAME = "<graph>"


@dataclass(frozen=True)
class Frame:
    length: int
    raw_length: int
    sha256: str
    params: dict[str, Any] = field(default_factory=dict)  # codec-specific fields
    offset: int = 0       # within the data section
    raw_offset: int = 0   # within the tensor's raw bytes

    def as_dict(self) -> dict[str, Any]:
        return {"length": self.length, "raw_length": self.raw_length, "sha256": self.sha256, **self.params}


@dataclass(frozen=True)
class Blob:
    """A stored, independently decodable byte string: a tensor's data or the graph."""

    name: str
    codec: str
    offset: int
    length: int
    raw_length: int
    sha256: str
    frames: tuple[Frame, ...]


@dataclass(frozen=True)
class TensorEntry(Blob):
    dtype: str = "float32"
    shape: tuple[int, ...] = ()
    binding: str = BINDING_INLINE
    splice: int | None = None  # offset in the graph where an inline tensor's bytes go


@dataclass(frozen=True)
class Manifest:
    graph: Blob
    tensors: tuple[TensorEntry, ...]
    data_length: int
    target: dict[str, Any]
    provenance: dict[str, Any]
    report: dict[str, Any]
    raw: dict[str, Any]
    layout: str = LAYOUT_COMPRESSED
    alignment: int = ALIGNMENT  # of mapped tensors' file offsets (mapped layout)

    @property
    def mapped(self) -> tuple[TensorEntry, ...]:
        return tuple(t for t in self.tensors if t.binding == BINDING_MAPPED)

    def tensor(self, name: str) -> TensorEntry:
        for t in self.tensors:
            if t.name == name:
                return t
        raise NoSuchTensor(name)

    @property
    def stored_bytes(self) -> int:
        return self.graph.length + sum(t.length for t in self.tensors)

    @property
    def raw_bytes(self) -> int:
        return self.graph.raw_length + sum(t.raw_length for t in self.tensors)


def show(value: Any) -> str:
    """A short, safe rendering of an untrusted JSON value for an error message (never the repr of a
    container, which could be huge or too deeply nested to print)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return repr(value)[:40]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | bytearray, path: str) -> dict[str, Any]:
    """Parse manifest bytes: strict UTF-8 JSON, no duplicate keys, no NaN, and a bound on the memory parsing
    takes, checked before parsing (docs/FORMAT.md, "Manifest": what parsing costs)."""
    width = char_width(data)
    if width == 4 and len(data) > MAX_ASTRAL_MANIFEST_BYTES:  # its text, and a string in it, cost 4 bytes a byte
        raise LimitExceeded(path, "the size of a manifest with characters past U+FFFF", len(data),
                            MAX_ASTRAL_MANIFEST_BYTES)
    limit = max(MANIFEST_COST_RATIO * len(data), MANIFEST_FREE_COST)
    cost = parse_cost(data, width, _KNOWN_KEYS, limit)
    if cost > limit:
        raise LimitExceeded(path, f"the memory parsing the JSON values of the {len(data)}-byte manifest may take "
                                  f"(bounded before parsing)", cost, limit)
    try:
        return _parse(data, path)
    except MemoryError:  # within the bound, but more than this process may allocate (an rlimit, a small device)
        raise TooLargeForDevice(path, cost) from None


def _parse(data: bytes | bytearray, path: str) -> dict[str, Any]:
    members = [0]

    def count(d: dict[str, Any]) -> dict[str, Any]:  # an object_hook: no list of pairs per object, as a pairs
        members[0] += len(d)                          # hook would take, and duplicates found by counting
        return d

    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_hook=count, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidManifest(path, f"not valid JSON ({str(e)[:200]})") from None
    del text
    # Every `:` outside a string separates a member; an object given a key twice keeps one member for two.
    colons = data.count(b":") + escaped_colons(data)
    if members[0] != colons and members[0] != colons - string_colons(obj):
        raise InvalidManifest(path, "an object has a duplicate key (JSON that parsers read differently)")
    if not isinstance(obj, dict):
        raise InvalidManifest(path, "the manifest is not a JSON object")
    return obj


class _Checker:
    def __init__(self, path: str):
        self.path = path

    def fail(self, problem: str) -> InvalidManifest:
        return InvalidManifest(self.path, problem)

    def obj(self, value: Any, where: str, required: Set[str], optional: Set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(f"{where} is not an object")
        missing = required - value.keys()
        if missing:
            raise self.fail(f"{where} lacks {', '.join(sorted(missing))}")
        unknown = value.keys() - required - optional
        if unknown:
            raise self.fail(f"{where} has unknown keys {', '.join(sorted(unknown))}")
        return value

    def int(self, value: Any, where: str, low: int = 0, high: int = _MAX_INT) -> int:
        if type(value) is not int or not low <= value <= high:
            raise self.fail(f"{where} must be an integer in [{low}, {high}], got {show(value)}")
        return value

    def str(self, value: Any, where: builtins.str, limit: builtins.int = MAX_NAME_BYTES) -> builtins.str:
        if not isinstance(value, str) or not value or len(value.encode("utf-8", "replace")) > limit:
            raise self.fail(f"{where} must be a non-empty string of at most {limit} bytes")
        return value

    def sha(self, value: Any, where: builtins.str) -> builtins.str:
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise self.fail(f"{where} must be a lowercase hex SHA-256")
        return value


_BLOB_KEYS = {"codec", "offset", "length", "raw_length", "sha256", "frames"}
_TENSOR_KEYS = _BLOB_KEYS | {"name", "dtype", "shape", "binding"}
_FRAME_KEYS = {"length", "raw_length", "sha256"}
# The keys every tensor or frame repeats, the most frequent first: the cost bound counts each as one str (the
# decoder memoizes keys).
_KNOWN_KEYS = ("sha256", "length", "raw_length", "offset", "codec", "name", "dtype", "shape", "binding", "frames",
               "splice", *sorted({k for d in DECODERS.values() for k in d.frame_keys}))


def _blob(c: _Checker, value: Any, name: str, where: str, keys: Set[str], optional: Set[str],
          itemsize: int) -> dict[str, Any]:
    d = c.obj(value, where, keys, optional)
    codec = d["codec"]
    if not isinstance(codec, str) or codec not in DECODERS:
        raise UnknownCodec(c.path, name, codec[:40] if isinstance(codec, str) else show(codec))
    decoder = DECODERS[codec]
    offset = c.int(d["offset"], f"{where}.offset")
    length = c.int(d["length"], f"{where}.length")
    raw = c.int(d["raw_length"], f"{where}.raw_length", high=MAX_TOTAL_RAW_BYTES)
    if offset % ALIGNMENT:
        raise InvalidOffset(c.path, name, f"offset {offset} is not a multiple of {ALIGNMENT}")
    frames_in = d["frames"]
    if not isinstance(frames_in, list) or len(frames_in) > MAX_FRAMES:
        raise c.fail(f"{where}.frames must be a list of at most {MAX_FRAMES} frames")
    if raw and not frames_in:
        raise c.fail(f"{where} has {raw} raw bytes but no frames")
    frames, pos, raw_pos = [], offset, 0
    for i, f in enumerate(frames_in):
        fw = f"{where}.frames[{i}]"
        fd = c.obj(f, fw, _FRAME_KEYS, decoder.frame_keys)
        fl = c.int(fd["length"], f"{fw}.length")
        fr = c.int(fd["raw_length"], f"{fw}.raw_length", low=1, high=MAX_FRAME_RAW_BYTES)
        frame = Frame(fl, fr, c.sha(fd["sha256"], f"{fw}.sha256"),
                      {k: fd[k] for k in decoder.frame_keys if k in fd}, pos, raw_pos)
        problem = decoder.check(frame.as_dict(), itemsize)
        if problem:
            raise InvalidOffset(c.path, name, f"frame {i}: {problem}")
        frames.append(frame)
        pos, raw_pos = pos + fl, raw_pos + fr
    if pos - offset != length:
        raise InvalidOffset(c.path, name, f"frames store {pos - offset} bytes but the entry says {length}")
    if raw_pos != raw:
        raise InvalidOffset(c.path, name, f"frames decode to {raw_pos} bytes but the entry says {raw}")
    return {"codec": codec, "offset": offset, "length": length, "raw_length": raw,
            "sha256": c.sha(d["sha256"], f"{where}.sha256"), "frames": tuple(frames)}


def _tensor(c: _Checker, value: Any, index: int, alignment: int | None) -> TensorEntry:
    where = f"tensors[{index}]"
    d = c.obj(value, where, _TENSOR_KEYS, {"splice"})
    name = c.str(d["name"], f"{where}.name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON allows it, an ONNX name (UTF-8) cannot hold it
        raise c.fail(f"{where}.name {ascii(name[:60])} is not valid Unicode (it cannot be written as UTF-8)") from None
    dtype = d["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise c.fail(f"tensor {name!r}: unknown dtype {show(dtype)}")
    shape = d["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise c.fail(f"tensor {name!r}: shape must be a list of at most {MAX_RANK} dimensions")
    shape = tuple(c.int(s, f"tensor {name!r} shape") for s in shape)
    expected = raw_length(dtype, shape)
    if expected > MAX_TOTAL_RAW_BYTES:
        raise LimitExceeded(c.path, f"tensor {name!r} size", expected, MAX_TOTAL_RAW_BYTES)
    blob = _blob(c, d, name, where, _TENSOR_KEYS, {"splice"}, max(DTYPES[dtype][2], 1))
    if blob["raw_length"] != expected:
        raise InvalidOffset(c.path, name, f"raw_length {blob['raw_length']} does not match {dtype}{list(shape)} "
                                          f"({expected} bytes)")
    binding = d["binding"]
    splice = d.get("splice")
    if binding == BINDING_INLINE:
        splice = c.int(splice, f"tensor {name!r} splice")
    elif binding in (BINDING_EXTERNAL, BINDING_MAPPED):
        if splice is not None:
            raise c.fail(f"tensor {name!r}: an {binding} tensor has no splice")
        if binding == BINDING_MAPPED:
            _check_mapped(c, name, blob, alignment)
    else:
        raise c.fail(f"tensor {name!r}: unknown binding {show(binding)}")
    return TensorEntry(name=name, dtype=dtype, shape=shape, binding=binding, splice=splice, **blob)


def _check_mapped(c: _Checker, name: str, blob: dict[str, Any], alignment: int | None) -> None:
    """A mapped tensor: only in a mapped bundle, stored raw, at a file offset that is a multiple of the layout's
    alignment (so that onnxruntime maps it in place)."""
    if alignment is None:
        raise c.fail(f"tensor {name!r} is mapped, but the manifest declares no mapped layout")
    if blob["codec"] != "raw":
        raise c.fail(f"tensor {name!r}: a mapped tensor must be stored raw, not {blob['codec']!r}")
    if (DATA_START + blob["offset"]) % alignment:
        raise InvalidOffset(c.path, name, f"file offset {DATA_START + blob['offset']} is not a multiple of the "
                                          f"layout's alignment {alignment}")


def _layout(c: _Checker, value: Any) -> tuple[str, int]:
    """The optional `layout` object: {"name": "mapped", "alignment": A} (absent: the compressed layout)."""
    d = c.obj(value, "layout", {"name", "alignment"})
    if d["name"] != LAYOUT_MAPPED:
        raise c.fail(f"layout.name must be {LAYOUT_MAPPED!r} (the compressed layout has no layout object), "
                     f"got {show(d['name'])}")
    if type(d["alignment"]) is not int or d["alignment"] not in MAPPED_ALIGNMENTS:
        raise c.fail(f"layout.alignment must be one of {', '.join(map(str, MAPPED_ALIGNMENTS))}, "
                     f"got {show(d['alignment'])}")
    return LAYOUT_MAPPED, d["alignment"]


def parse(obj: dict[str, Any], path: str, format_name: str, version: int) -> Manifest:
    """Check a parsed manifest against the v1 schema and the layout rules; return typed records."""
    c = _Checker(path)
    c.obj(obj, "manifest", {"format", "version", "graph", "tensors", "data_length", "target", "provenance",
                            "report"}, {"layout"})
    if obj["format"] != format_name or obj["version"] != version:
        raise c.fail(f"format/version fields say {show(obj['format'])} {show(obj['version'])}, "
                     f"the header says {format_name!r} {version}")
    for key in ("target", "provenance", "report"):
        if not isinstance(obj[key], dict):
            raise c.fail(f"{key} is not an object")
        if _depth(obj[key]) > MAX_MANIFEST_DEPTH - 1:
            raise c.fail(f"{key} nests deeper than {MAX_MANIFEST_DEPTH - 1} levels")
    data_length = c.int(obj["data_length"], "data_length")
    graph = Blob(name=GRAPH_NAME, **_blob(c, obj["graph"], GRAPH_NAME, "graph", _BLOB_KEYS, set(), 1))
    if graph.raw_length > MAX_GRAPH_BYTES:
        raise LimitExceeded(path, "graph size", graph.raw_length, MAX_GRAPH_BYTES)
    tensors_in = obj["tensors"]
    if not isinstance(tensors_in, list):
        raise c.fail("tensors is not a list")
    if len(tensors_in) > MAX_TENSORS:
        raise LimitExceeded(path, "tensor count", len(tensors_in), MAX_TENSORS)
    layout, alignment = _layout(c, obj["layout"]) if "layout" in obj else (LAYOUT_COMPRESSED, ALIGNMENT)
    mapped_alignment = alignment if layout == LAYOUT_MAPPED else None
    tensors = tuple(_tensor(c, t, i, mapped_alignment) for i, t in enumerate(tensors_in))
    if layout == LAYOUT_MAPPED and any(t.binding == BINDING_EXTERNAL for t in tensors):
        raise c.fail("a bundle of the mapped layout has no external tensors")
    _check_layout(path, graph, tensors, data_length, alignment)
    return Manifest(graph, tensors, data_length, obj["target"], obj["provenance"], obj["report"], obj, layout,
                    alignment)


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is not None:
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _check_layout(path: str, graph: Blob, tensors: tuple[TensorEntry, ...], data_length: int,
                  alignment: int = ALIGNMENT) -> None:
    """Names unique; blobs in ascending order, non-overlapping, inside the data section, gaps short (before a
    mapped tensor: shorter than the layout's alignment);
    splices distinct and inside the graph; totals within limits."""
    names: set[str] = set()
    splices: set[int] = set()
    total_raw = 0  # the loop counts the graph too
    end = 0
    for blob in (graph, *tensors):
        if blob.name in names:
            raise InvalidOffset(path, blob.name, "the name is used by more than one tensor")
        names.add(blob.name)
        if blob.offset < end:
            raise InvalidOffset(path, blob.name, f"data at {blob.offset} overlaps the previous blob (ends {end})")
        if blob.offset + blob.length > data_length:
            raise InvalidOffset(path, blob.name, f"data ends at {blob.offset + blob.length}, past the data section "
                                                 f"({data_length} bytes)")
        mapped = isinstance(blob, TensorEntry) and blob.binding == BINDING_MAPPED
        gap_limit = max(MAX_GAP, alignment) if mapped else MAX_GAP
        if blob.offset - end >= gap_limit:
            raise InvalidOffset(path, blob.name, f"gap of {blob.offset - end} bytes before the data")
        end = blob.offset + blob.length
        total_raw += blob.raw_length
        if isinstance(blob, TensorEntry) and blob.splice is not None:
            if blob.splice > graph.raw_length or blob.splice in splices:
                raise InvalidOffset(path, blob.name, f"splice offset {blob.splice} is outside the graph or reused")
            splices.add(blob.splice)
    if data_length - end >= MAX_GAP:
        raise InvalidManifest(path, f"data section has {data_length - end} bytes after its last blob")
    if total_raw > MAX_TOTAL_RAW_BYTES:
        raise LimitExceeded(path, "total decompressed size", total_raw, MAX_TOTAL_RAW_BYTES)
