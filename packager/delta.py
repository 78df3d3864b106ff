"""Making a delta: what changed between two bundles, for a device that holds the old one.

    made = make_delta("model-v1.edgepack", "model-v2.edgepack", "v1-to-v2.edgedelta")
    made.bytes, made.ops            # size, and per blob: copied, diffed or carried, and its bytes

Each blob of the new bundle is, whichever is smallest: copied from the old bundle (stored bytes equal, found
by their SHA-256), rebuilt from the old tensor of the same name and a coded difference (delta_code.py), or
carried whole. The delta names the old bundle by the SHA-256 of its manifest and the new one by the SHA-256
of the whole file, carries the new manifest and signature block, and is checked by applying it before it is
renamed into place. The format is docs/FORMAT.md's "Deltas".
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator

import zstandard

from edgepack.runtime.delta import apply_delta, base_sha256
from edgepack.runtime.delta_format import (
    DELTA_DATA_START, DELTA_FLAG_INDEX_ZSTD, DELTA_FORMAT_NAME, DELTA_HEADER, DELTA_MAGIC, DELTA_VERSION, OP_COPY,
    OP_DIFF, OP_LITERAL,
)
from edgepack.runtime.digest import sha256_for
from edgepack.runtime.errors import BundleError
from edgepack.runtime.manifest import GRAPH_NAME, Blob, TensorEntry
from edgepack.runtime.paths import check_output
from edgepack.runtime.reader import Bundle

from .delta_code import code_tensor, settings_for
from .writer import dumps_manifest, write_atomic

_CHUNK = 1 << 20
DEFAULT_LEVEL = 19


@dataclass(frozen=True)
class BlobDelta:
    name: str
    op: str
    bytes: int         # of the delta's data this blob takes
    stored_bytes: int  # in the new bundle


@dataclass(frozen=True)
class Made:
    path: str
    bytes: int
    new_bytes: int
    ops: tuple[BlobDelta, ...]


def _stored(bundle: Bundle, blob: Blob) -> Iterator[bytes]:
    for at in range(0, blob.length, _CHUNK):
        yield bundle.read_stored(blob.offset + at, min(_CHUNK, blob.length - at))


def _stored_sha(bundle: Bundle, blob: Blob) -> str:
    digest = sha256_for(blob.length)()
    for chunk in _stored(bundle, blob):
        digest.update(chunk)
    return digest.hexdigest()


def _file_sha(path: str) -> str:
    digest = sha256_for(os.path.getsize(path))()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: str | os.PathLike) -> Bundle:
    bundle = Bundle(path)
    problems = bundle.verify()
    if problems:
        bundle.close()
        raise BundleError(f"{problems[0]}; refusing to make a delta from a bundle that fails verification")
    return bundle


def _encode_level(bundle: Bundle) -> list[int]:
    """The zstd level the bundle's encoder recorded, if any (its lz-mode zstd parts use it)."""
    for step in bundle.manifest.provenance.get("steps", []):
        options = step.get("options") if isinstance(step, dict) else None
        if isinstance(options, dict) and type(options.get("level")) is int:
            return [options["level"]]
    return []


class _Plan:
    """The delta's index entries and payloads, the payloads spooled to a temporary file as they are made."""

    def __init__(self, old: Bundle, new: Bundle, level: int):
        self.old, self.new, self.level = old, new, level
        self.settings = settings_for(_encode_level(new))
        self.spool = tempfile.TemporaryFile()
        self.entries: list[dict[str, Any]] = []
        self.ops: list[BlobDelta] = []
        self.old_blobs: dict[str, Blob] = {GRAPH_NAME: old.manifest.graph,
                                           **{t.name: t for t in old.manifest.tensors}}
        self.old_sha = {name: _stored_sha(old, blob) for name, blob in self.old_blobs.items()}
        self.by_sha: dict[str, str] = {}
        for name, sha in self.old_sha.items():
            self.by_sha.setdefault(sha, name)

    def add(self, blob: Blob) -> None:
        sha = _stored_sha(self.new, blob)
        same = self.old_blobs.get(blob.name)
        source = blob.name if self.old_sha.get(blob.name) == sha else self.by_sha.get(sha)
        if source is not None and self.old_blobs[source].length == blob.length:
            self._record({"op": OP_COPY, "base": source, "sha256": sha}, blob, [])
            return
        if isinstance(blob, TensorEntry) and isinstance(same, TensorEntry) and same.dtype == blob.dtype \
                and same.raw_length == blob.raw_length and blob.raw_length:
            old_raw, new_raw = self.old.read_blob(same), self.new.read_blob(blob)
            stored = [self.new.read_stored(f.offset, f.length) for f in blob.frames]
            coded = code_tensor(old_raw, new_raw, blob, stored, self.settings, self.level)
            if coded.size < blob.length:
                frames = [f.entry for f in coded.frames]
                entry = {"op": OP_DIFF, "base": same.name, "transform": coded.transform, "frames": frames}
                self._record(entry, blob, [p for f in coded.frames for p in f.payloads])
                return
        self._record({"op": OP_LITERAL, "sha256": sha}, blob, _stored(self.new, blob))

    def _record(self, entry: dict[str, Any], blob: Blob, payloads: Any) -> None:
        size = 0
        for p in payloads:
            self.spool.write(p)
            size += len(p)
        self.entries.append(entry)
        self.ops.append(BlobDelta(blob.name, entry["op"], size, blob.length))

    def index(self, result_sha: str) -> dict[str, Any]:
        from edgepack.version import __version__

        new = self.new
        return {
            "format": DELTA_FORMAT_NAME, "version": DELTA_VERSION,
            "base": {"manifest_sha256": base_sha256(self.old), "bytes": self.old.file_size},
            "result": {"sha256": result_sha, "bytes": new.file_size, "flags": new.flags,
                       "manifest_length": len(new.manifest_bytes), "signature_length": len(new.signature)},
            "zstd": self.settings.used, "blobs": self.entries,
            "provenance": {"edgepack_version": __version__,
                           "zstd_version": ".".join(map(str, zstandard.ZSTD_VERSION)),
                           "base": os.path.basename(self.old.path), "result": os.path.basename(new.path)},
        }

    def chunks(self, index: bytes, flags: int) -> Iterator[bytes]:
        data_length = len(self.new.manifest_bytes) + len(self.new.signature) + self.spool.tell()
        index_sha = sha256_for(len(index))(index).digest()
        yield DELTA_HEADER.pack(DELTA_MAGIC, DELTA_VERSION, flags, DELTA_DATA_START + data_length, len(index),
                                index_sha)
        yield self.new.manifest_bytes
        yield self.new.signature
        self.spool.seek(0)
        while chunk := self.spool.read(_CHUNK):
            yield chunk
        yield index


def make_delta(old: str | os.PathLike, new: str | os.PathLike, output: str | os.PathLike,
               level: int = DEFAULT_LEVEL, check: bool = True) -> Made:
    """Write a delta that turns the bundle `old` into the bundle `new` (byte for byte) to `output`.

    `level`: zstd level for the differences. `check`: apply the delta to `old` in a temporary folder and
    compare the result with `new` before renaming the delta into place."""
    out = check_output(output, [old, new])   # a missing folder, or -o naming OLD or NEW: one line, nothing written
    with _verified(old) as o, _verified(new) as n:
        plan = _Plan(o, n, level)
        with plan.spool:
            for blob in (n.manifest.graph, *n.manifest.tensors):
                plan.add(blob)
            text = dumps_manifest(plan.index(_file_sha(n.path)))
            packed = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(text)
            index, flags = (packed, DELTA_FLAG_INDEX_ZSTD) if len(packed) < len(text) else (text, 0)
            if check:
                _check(o.path, plan.chunks(index, flags), out)
            write_atomic(out, plan.chunks(index, flags))
        return Made(out, os.path.getsize(out), n.file_size, tuple(plan.ops))


def _check(base: str, chunks: Iterator[bytes], output: str) -> None:
    """Apply the delta (its chunks) to `base` in a temporary folder beside `output`: apply_delta checks the
    result's SHA-256 against the new bundle's, so this raises unless the delta rebuilds it exactly."""
    folder = os.path.dirname(os.path.abspath(output))
    with tempfile.TemporaryDirectory(dir=folder, prefix=".edgedelta-check.") as tmp:
        path = os.path.join(tmp, "delta")
        write_atomic(path, chunks)
        apply_delta(base, path, os.path.join(tmp, "result"))


def describe(made: Made) -> list[str]:
    """Lines for the CLI: the delta's size against the new bundle, and its largest blobs."""
    changed = [op for op in made.ops if op.op != OP_COPY]
    lines = [f"wrote {made.path}: {made.bytes:,} bytes, {made.bytes / made.new_bytes:.4f}x the new bundle "
             f"({made.new_bytes:,} bytes); {len(made.ops) - len(changed)} blobs unchanged, {len(changed)} changed"]
    for op in sorted(changed, key=lambda op: -op.bytes)[:10]:
        lines.append(f"  {op.name}: {op.op}, {op.bytes:,} bytes ({op.bytes / max(op.stored_bytes, 1):.3f}x its "
                     f"{op.stored_bytes:,} stored bytes)")
    if made.bytes >= made.new_bytes:
        lines.append("note: the delta is no smaller than the new bundle (the versions share almost nothing), so "
                     "shipping the new bundle itself costs as little and needs no base on the device")
    return lines

