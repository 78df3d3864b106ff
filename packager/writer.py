"""The bundle writer: a small state machine that streams a bundle to a temporary file and renames it into
place only once it is complete, so that a crash or a kill leaves the old file or no file, never a partial one.

    with BundleWriter("out.edgepack") as w:
        w.add_graph(encoded_graph)                 # first
        w.add_tensor(name, dtype, shape, encoded, binding=..., splice=...)
        w.finish(target=..., provenance=..., report=...)

Misuse (a tensor before the graph, anything after finish) raises instead of writing a corrupt file.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import zstandard

from edgepack.runtime.format import (
    FORMAT_NAME,
    ALIGNMENT, BINDING_INLINE, DATA_START, FLAG_MANIFEST_ZSTD, HEADER, MAGIC, VERSION, align,
)
from edgepack.runtime.manifest import GRAPH_NAME

from .encode import Encoded



class WriterStateError(RuntimeError):
    """The writer was used out of order (a bug in the caller, not bad input)."""


def dumps_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest's canonical bytes: compact JSON, keys in insertion order, UTF-8."""
    return json.dumps(manifest, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def stored_manifest(text: bytes) -> tuple[bytes, int]:
    """The manifest as stored, and the header flags that say how: zstd-compressed when that is smaller
    (hashes and names make it 3% of a small model's bundle otherwise)."""
    packed = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(text)
    return (packed, FLAG_MANIFEST_ZSTD) if len(packed) < len(text) else (text, 0)


def write_atomic(path: str | os.PathLike, chunks: Any, mode: int | None = None) -> None:
    """Write the byte chunks to `path` through a temporary file in the same folder, fsync, rename.
    `mode`: the file's permissions (default: what open() would give under the umask)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _mkstemp_like_open(path, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        _unlink(tmp)
        raise


def _mkstemp_like_open(path: str, mode: int | None = None) -> tuple[int, str]:
    """A temporary file beside `path`, with the permissions open() would give `path` (mkstemp uses 0600),
    or `mode`. Its name (`.NAME.XXXXXXXX.tmp`) is hidden, and a bundle's has a zero header until the end."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask() if mode is None else mode)
    except OSError:
        pass
    return fd, tmp


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy across threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class BundleWriter:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.folder = os.path.dirname(os.path.abspath(self.path))
        fd, self.tmp = _mkstemp_like_open(self.path)
        self.file = os.fdopen(fd, "wb")
        self.file.write(bytes(DATA_START))  # header placeholder, written last
        self.pos = 0  # within the data section
        self.graph: dict[str, Any] | None = None
        self.tensors: list[dict[str, Any]] = []
        self.state = "open"

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.state != "finished":
            self.abort()

    def _blob(self, encoded: Encoded, page: int | None = None) -> dict[str, Any]:
        # `page`: align the blob's file offset (DATA_START + offset) to it, for a mapped tensor
        start = align(self.pos, ALIGNMENT) if page is None else align(DATA_START + self.pos, page) - DATA_START
        self.file.write(bytes(start - self.pos))
        frames = []
        for f in encoded.frames:
            self.file.write(f.payload)
            frames.append({"length": len(f.payload), "raw_length": f.raw_length, "sha256": f.sha256, **f.params})
        self.pos = start + encoded.length
        return {"codec": encoded.codec, "offset": start, "length": encoded.length,
                "raw_length": encoded.raw_length, "sha256": encoded.sha256, "frames": frames}

    def add_graph(self, encoded: Encoded) -> None:
        if self.state != "open":
            raise WriterStateError(f"add_graph in state {self.state!r}: the graph comes first, once")
        self.graph = self._blob(encoded)
        self.state = "tensors"

    def add_tensor(self, name: str, dtype: str, shape: tuple[int, ...], encoded: Encoded,
                   binding: str = BINDING_INLINE, splice: int | None = None, page: int | None = None) -> None:
        """`page`: for a mapped tensor, the alignment of its offset in the file (the layout's)."""
        if self.state != "tensors":
            raise WriterStateError(f"add_tensor in state {self.state!r}: add the graph first")
        if name == GRAPH_NAME:
            raise WriterStateError(f"{GRAPH_NAME!r} is reserved")
        entry: dict[str, Any] = {"name": name, "dtype": dtype, "shape": list(shape), "binding": binding}
        entry.update(self._blob(encoded, page))
        if splice is not None:
            entry["splice"] = splice
        self.tensors.append(entry)

    def finish(self, target: dict[str, Any], provenance: dict[str, Any], report: dict[str, Any],
               layout: dict[str, Any] | None = None) -> int:
        """Write the manifest and header, fsync, and rename into place. Returns the bundle's size in bytes.
        `layout`: the manifest's layout object, for a mapped bundle (docs/FORMAT.md, "Layouts")."""
        if self.state != "tensors":
            raise WriterStateError(f"finish in state {self.state!r}")
        manifest = {"format": FORMAT_NAME, "version": VERSION, "graph": self.graph, "tensors": self.tensors,
                    "data_length": self.pos}
        if layout is not None:
            manifest["layout"] = layout
        manifest.update({"target": target, "provenance": provenance, "report": report})
        data, flags = stored_manifest(dumps_manifest(manifest))
        manifest_offset = DATA_START + self.pos
        self.file.write(data)
        self.file.seek(0)
        self.file.write(HEADER.pack(MAGIC, VERSION, flags, manifest_offset, len(data), 0))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        _fsync_dir(self.folder)
        self.state = "finished"
        return manifest_offset + len(data)

    def abort(self) -> None:
        if self.state in ("finished", "aborted"):
            return
        self.state = "aborted"
        try:
            self.file.close()
        finally:
            _unlink(self.tmp)

