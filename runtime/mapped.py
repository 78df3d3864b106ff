"""Loading a bundle of the mapped layout: onnxruntime memory-maps the large initializers from the bundle file.

A mapped bundle (docs/FORMAT.md, "Layouts") stores its large main-graph initializers raw, at offsets in the file
that are multiples of a page size, and its graph without them and without any external-data reference. This
module checks the stored graph, splices the small tensors back in (each checked before), and appends to the
model one more `graph` field that protobuf merges into the first: an initializer per mapped tensor, built here
from the manifest only, whose external data is the bundle file itself at that tensor's offset. onnxruntime
maps those regions in place (no copy of the bundle, no temporary file) and frees what it prepacks.

Every mapped tensor's SHA-256 is checked before create_mapped() returns, on the bytes of the very file
onnxruntime maps (docs/DESIGN.md, "The mapped layout: what is checked"):
- the file onnxruntime opens (the bundle's folder + its name) is the inode load() opened: its device and
  inode are compared before and after the session is built, and every mapping of that path in
  /proc/self/maps must be of that inode;
- the hashes are read from the same inode, through the page cache, which is what a private mapping shows for
  every page nobody has written (onnxruntime maps PROT_READ|PROT_WRITE, MAP_PRIVATE and writes no initializer);
- a change to the file's content between the first stat and the last hash changes its ctime: fstat before
  and after must agree on size, mtime and ctime, or the load fails. A file changed less than FRESH_NS ago
  is waited on first, since the kernel stamps times from a clock that ticks every few milliseconds;
- the file must not be writable by other users (they could change weights in use after load() returns): a
  bundle that is group- or world-writable, or owned by another user than this one or root, is refused;
- nor may they rename it or a folder above it (they could swap in a folder holding another file just while
  onnxruntime opens the path, and back before the checks above): every folder from the bundle's up to `/`
  must be owned by this user or root, and writable by others only with the sticky bit (as /tmp is).
"""

from __future__ import annotations

import functools
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort

from .binding import check_names
from .digest import small_sha256
from .errors import BundleError, CorruptTensor, InvalidGraph, SessionError
from .format import BINDING_INLINE, BINDING_MAPPED, DATA_START, DTYPES
from .manifest import Frame, TensorEntry
from .protowire import GraphNames, ProtoError, scan_model
from .host import run_parallel, usable_cpus
from .limits import UNTRUSTED, LoadLimits, check_dense, run_isolated
from .reader import Bundle
from .text import error_line

# onnxruntime's session option naming the folder that external data locations are relative to, for a model
# given as bytes (onnxruntime >= 1.17)
FOLDER_CONFIG = "session.model_external_initializers_file_folder_path"
FRESH_NS = 20_000_000  # a file changed more recently than this (ns) is waited on: coarse kernel timestamps
# Mapped tensors whose hash may be checked while onnxruntime builds the session: weights (float and 8-bit
# types, 64 KiB and more). Others (integers can be shapes or indices that constant folding acts on) are
# checked before onnxruntime reads them, as for compressed bundles.
LATE_MIN_BYTES = 64 * 1024
_LATE_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int4", "uint4",
                          "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz"})
_PREADV = hasattr(os, "preadv")
_HASH_BLOCK = 256 * 1024  # read and hashed at a time, per hashing thread
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)  # fault the frame in with one call
# Frames smaller than this are read, not mapped: a mapping costs a dup, an fstat, mmap and munmap (~50 us for
# 4 KiB, against ~10 us for a read), which a bundle of many one-byte frames would pay for each.
_MAP_MIN_BYTES = _HASH_BLOCK


@dataclass
class MappedSession:
    """What create_mapped built: the session, and how many bytes of the bundle onnxruntime still maps."""

    session: Any
    mapped_bytes: int


# --- the appended initializers (protobuf wire format) --------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _number(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def initializers_message(tensors: list[TensorEntry], location: str) -> bytes:
    """A serialized ModelProto holding only `graph.initializer`: one TensorProto per mapped tensor (dims 1,
    data_type 2, name 8, external_data 13: location, offset, length, data_location 14 = EXTERNAL). Appended
    to a serialized model, protobuf merges its graph into the model's, adding these initializers."""
    graph = bytearray()
    for t in tensors:
        entries = (("location", location), ("offset", str(DATA_START + t.offset)), ("length", str(t.raw_length)))
        proto = b"".join(_number(1, d) for d in t.shape) + _number(2, DTYPES[t.dtype][0])
        proto += _field(8, t.name.encode("utf-8"))
        proto += b"".join(_field(13, _field(1, k.encode()) + _field(2, v.encode("utf-8"))) for k, v in entries)
        proto += _number(14, 1)
        graph += _field(5, proto)
    return _field(7, bytes(graph))


# --- checks ------------------------------------------------------------------------------------------------

def check_graph(bundle: Bundle, graph: Any, inline: list[TensorEntry], mapped: list[TensorEntry],
                max_fields: int | None = None) -> tuple[list[int], int]:
    """The stored graph of a mapped bundle: each inline tensor lands where its splice says with the manifest's
    dtype and shape; no tensor refers to external data (the runtime alone adds the mapped ones); no tensor of
    the graph has a mapped tensor's name (protobuf would merge in a second definition); the graph's names are
    bound to the manifest's (runtime/binding.py)."""
    if any(t.binding not in (BINDING_INLINE, BINDING_MAPPED) for t in bundle.manifest.tensors):
        raise InvalidGraph(bundle.path, "a mapped bundle holds inline and mapped tensors only")
    try:
        splices = [(t.splice or 0, t.raw_length) for t in inline]  # inline tensors always have a splice
        outputs: list[str] = []
        graph_names = GraphNames()
        records = scan_model(memoryview(graph), splices, spliced_only=True, max_fields=max_fields,
                             outputs=outputs, names=graph_names)
    except ProtoError as e:
        raise InvalidGraph(bundle.path, str(e)) from None
    names = {t.name for t in mapped}
    clash = next((o for o in outputs if o in names), None)
    if clash is not None:  # onnxruntime would use that node's value instead of the hashed mapped weights
        raise InvalidGraph(bundle.path, f"a node's output is named {clash[:200]!r}, a mapped tensor's name")
    for r in records:
        if r.external is not None or r.data_location == 1:
            raise InvalidGraph(bundle.path, f"tensor {r.label[:200]!r} refers to external data; a bundle must be "
                                            "self-contained")
        if r.label in names:
            raise InvalidGraph(bundle.path, f"the graph defines {r.label[:200]!r}, a mapped tensor's name")
        if r.splice is not None:
            entry = inline[r.splice]
            if DTYPES[entry.dtype][0] != r.data_type or tuple(r.dims) != entry.shape:
                raise InvalidGraph(bundle.path, f"tensor {entry.name!r} is {entry.dtype}{list(entry.shape)} in "
                                                "the manifest but not in the graph")
    check_names(bundle.path, records, graph_names, inline, mapped, appended=True)
    return graph_names.dense, graph_names.held  # what onnxruntime makes of them (limits.check_dense)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_file(bundle: Bundle) -> os.stat_result:
    """The bundle's file as load() opened it, refused if others may write to it; waits out a fresh ctime."""
    st = os.fstat(bundle.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{bundle.path}: a mapped bundle must be a regular file")
    owner_ok = st.st_uid in (0, os.geteuid()) if hasattr(os, "geteuid") else True
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or not owner_ok:
        raise BundleError(f"{bundle.path}: a mapped bundle must be writable by its owner only, and owned by "
                          "this user or root: onnxruntime uses its weights in place, so whoever can write it "
                          "can change the model (chmod go-w, or package it with --layout compressed)")
    age = time.time_ns() - st.st_ctime_ns
    if 0 <= age < FRESH_NS:
        time.sleep((FRESH_NS - age) / 1e9)
        st = os.fstat(bundle.fileno())
    return st


def check_folders(path: str) -> None:
    """Refuse a bundle in a folder another user may rename entries of: its folder or any above it owned by
    another user than this one or root, or group- or world-writable without the sticky bit."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    folder = os.path.dirname(path)
    while True:
        st = os.stat(folder)
        others = stat.S_IWGRP | stat.S_IWOTH
        if (me is not None and st.st_uid not in (0, me)) or (st.st_mode & others and not st.st_mode & stat.S_ISVTX):
            raise BundleError(f"{ascii(folder)[1:-1]}: a mapped bundle's folders must be writable by their owner "
                              "only (or sticky, as /tmp is) and owned by this user or root: onnxruntime opens the "
                              "bundle by path, so whoever can rename entries there can swap the file in use "
                              f"(chmod go-w {ascii(folder)[1:-1]}, move the bundle, or package it with --layout "
                              "compressed)")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def _same_content(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == \
        (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def mapped_regions(path: str, st: os.stat_result) -> int | None:
    """Bytes of `path` this process maps (Linux /proc/self/maps), or None where that cannot be read. Raises
    if a mapping of that path is of another file: onnxruntime would be using bytes nobody checked."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    total = 0
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6:
            continue
        span, _, _, device, inode, name = parts
        ours = device == dev and inode == str(st.st_ino)
        if ours:
            start, end = span.split("-")
            total += int(end, 16) - int(start, 16)
        elif name == path or name == path + " (deleted)":
            raise BundleError(f"{path}: onnxruntime mapped another file than the one checked (the bundle was "
                              "replaced while loading)")
    return total


class _Hasher:
    """Checks the SHA-256 of mapped tensors' frames, reading the bundle file a block at a time (no mapping:
    the page cache is not this process's memory)."""

    def __init__(self, bundle: Bundle, work: list[tuple[TensorEntry, Frame]], threads: int):
        self.bundle, self.work, self.threads = bundle, work, threads
        self.error: BaseException | None = None
        self._local = threading.local()

    def _check(self, tensor: TensorEntry, frame: Frame) -> None:
        # a small frame with the built-in SHA-256: OpenSSL, for the weights, loads on the hashing thread
        digest = small_sha256() if frame.raw_length < LATE_MIN_BYTES else self.bundle.sha256()
        if frame.length < _MAP_MIN_BYTES or not _hash_mapped(self.bundle, frame, digest):
            self._hash_read(frame, digest)
        if digest.hexdigest() != frame.sha256:
            raise CorruptTensor(self.bundle.path, tensor.name, f"SHA-256 mismatch in the mapped frame at raw "
                                                               f"offset {frame.raw_offset}")

    def _hash_read(self, frame: Frame, digest: Any) -> None:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(_HASH_BLOCK)
        view = memoryview(buf)
        pos, end = frame.offset, frame.offset + frame.length
        while pos < end:
            n = min(_HASH_BLOCK, end - pos)
            if _PREADV:
                self.bundle.read_into(pos, view[:n])
                digest.update(view[:n])
            else:
                digest.update(self.bundle.read_stored(pos, n))
            pos += n

    def run(self) -> None:
        jobs: list[Callable[[], None]] = [functools.partial(self._check, t, f) for t, f in self.work]
        try:
            run_parallel(jobs, self.threads)
        except BaseException as e:  # handed to the thread that waits for this one
            self.error = e


def _hash_mapped(bundle: Bundle, frame: Frame, digest: Any) -> bool:
    """Hash a frame through a mapping of its own pages (no copy: the page cache's pages, as onnxruntime's
    mapping shows them), unmapped at once so that it adds at most one frame to this process's RSS. False
    where the frame cannot be mapped (then it is read instead)."""
    start = bundle.data_start + frame.offset
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        window = mmap.mmap(bundle.fileno(), start + frame.length - base, flags=_MAP_FLAGS, prot=mmap.PROT_READ,
                           offset=base)
    except (OSError, ValueError, OverflowError):
        return False
    try:
        with memoryview(window) as view:
            digest.update(view[start - base:])
    finally:
        window.close()
    return True


def _late(tensor: TensorEntry) -> bool:
    return tensor.raw_length >= LATE_MIN_BYTES and tensor.dtype in _LATE_DTYPES


# --- the session -------------------------------------------------------------------------------------------

def _read_ahead(bundle: Bundle, mapped: list[TensorEntry]) -> None:
    """Ask the kernel to read the mapped tensors in now, for the hashes and onnxruntime's mapping alike."""
    if not mapped or not hasattr(os, "posix_fadvise"):
        return
    start = DATA_START + mapped[0].offset
    end = DATA_START + max(t.offset + t.length for t in mapped)
    try:
        os.posix_fadvise(bundle.fileno(), start, end - start, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass


def _build(bundle: Bundle, so: ort.SessionOptions, providers: list[str], threads: int, path: str,
           before: os.stat_result, inline: list[TensorEntry], mapped: list[TensorEntry],
           early: list[tuple[TensorEntry, Frame]], hash_threads: int, limits: LoadLimits) -> Any:
    """Check the graph, splice the small tensors in, check the mapped tensors that are not weights, and build
    the session on the model with the mapped initializers appended, under `limits` as compressed bundles are
    (constant folding off for unsigned bundles; a child process first when limits.isolated)."""
    graph = bundle.read_graph()
    dense, held = check_graph(bundle, graph, inline, mapped, limits.max_fields(bundle.file_size))
    check_dense(bundle.path, limits, bundle.file_size, bundle.manifest.raw_bytes, dense, held)
    parts: list[Any] = []
    pos = 0
    for tensor in inline:  # small tensors, each decoded and checked here
        parts += [memoryview(graph)[pos:tensor.splice], bundle.read_blob(tensor, threads)]
        pos = tensor.splice or 0
    parts += [memoryview(graph)[pos:], initializers_message(mapped, os.path.basename(path))]
    model = b"".join(parts)
    first = _Hasher(bundle, early, hash_threads)
    first.run()
    if first.error is not None:
        raise first.error
    if not _same_file(path, before):
        raise BundleError(f"{bundle.path}: the file was replaced while loading")
    so.add_session_config_entry(FOLDER_CONFIG, os.path.dirname(path))
    kwargs = limits.ort_kwargs()
    if limits.isolated:  # the same checked bytes, first in a child process under the limits
        run_isolated(bundle.path, limits,
                     lambda: ort.InferenceSession(model, so, providers=providers, enable_fallback=0, **kwargs))
    try:
        return ort.InferenceSession(model, so, providers=providers, enable_fallback=0, **kwargs)
    except Exception as e:  # onnxruntime raises its own types; reported as a SessionError
        raise SessionError(f"{bundle.path}: onnxruntime could not build a session: "
                           f"{error_line(e, 500, last=True)}") from None


def create_mapped(bundle: Bundle, so: ort.SessionOptions, providers: list[str], threads: int,
                  defer: bool = True, limits: LoadLimits = UNTRUSTED) -> MappedSession:
    """Build the session of a mapped bundle (see the module's docstring). `defer`: check weights' hashes while
    onnxruntime builds the session, on another thread; otherwise every hash is checked before. `limits`: what
    building the session may cost (runtime/limits.py), as for compressed bundles."""
    manifest = bundle.manifest
    inline = sorted((t for t in manifest.tensors if t.binding == BINDING_INLINE), key=lambda t: t.splice or 0)
    mapped = list(manifest.mapped)
    # onnxruntime resolves links and refuses data outside the folder it is given: give it the real one
    path = os.path.realpath(bundle.path)
    if not isinstance(path, str) or not _utf8(path):  # onnxruntime takes the folder and file name as UTF-8
        raise BundleError(f"{ascii(os.fsdecode(path))}: onnxruntime cannot load a mapped bundle whose path is "
                          "not valid UTF-8 (a str path); rename the file or its folder, or pass the path as str")
    before = check_file(bundle)
    check_folders(path)
    _read_ahead(bundle, mapped)
    work = [(t, f) for t in mapped for f in t.frames]
    late = [(t, f) for t, f in work if defer and _late(t)]
    hash_threads = max(1, min(threads, usable_cpus() - 1 if defer else usable_cpus()))
    hasher = _Hasher(bundle, late, hash_threads)
    worker = threading.Thread(target=hasher.run, name="edgepack-hash", daemon=True)
    if late:  # weights: hashed from now on, while the graph is checked and onnxruntime builds the session
        worker.start()
    failure: BaseException | None = None
    try:
        session = _build(bundle, so, providers, threads, path, before, inline, mapped,
                         [(t, f) for t, f in work if not (defer and _late(t))], hash_threads, limits)
    except BaseException as e:  # raised below, after the hashing thread has ended
        failure = e
    if late:
        worker.join()  # the bundle's descriptor must outlive the thread that reads it
    if hasher.error is not None:  # a corrupt weight: reported in preference to onnxruntime's error
        raise hasher.error
    if failure is not None:
        raise failure
    after = os.fstat(bundle.fileno())
    if not _same_content(before, after) or not _same_file(path, before):
        raise BundleError(f"{bundle.path}: the file changed while loading (size, times or identity differ); "
                          "its weights cannot be vouched for")
    regions = mapped_regions(path, before)
    return MappedSession(session, -1 if regions is None else regions)
