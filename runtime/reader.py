"""The lazy bundle reader: opening a bundle reads and checks its header and manifest, nothing else.

    with open_bundle("model.edgepack") as bundle:
        bundle.manifest.tensors          # names, dtypes, shapes, sizes: no tensor data read
        w = bundle.tensor("fc1.weight")  # reads, decodes and hash-checks one tensor

Every size and offset comes from the file, so every one is checked against the file's real size and the
format's limits before anything is allocated or read (runtime/format.py, runtime/manifest.py).
"""

from __future__ import annotations

import functools
import mmap
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from . import manifest as manifest_mod
from . import signature as signature_mod
from .digest import sha256_for
import zstandard

from .codecs import DECODERS, CodecError, zstd_decode_into
from .errors import (
    BadMagic, BundleError, CorruptTensor, ManifestTooLarge, TrailingBytes, TruncatedBundle, UnsupportedVersion,
    InvalidManifest, LimitExceeded, NoSuchTensor, TooLargeForDevice, BadSignature,
)
from .format import (
    DATA_START, FLAG_MANIFEST_ZSTD, FORMAT_NAME, HEADER, HEADER_SIZE, KNOWN_FLAGS, MAGIC, MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES, SUPPORTED_VERSIONS,
    numpy_dtype,
)
from .manifest import Blob, Frame, Manifest
from .host import check_fits, default_threads, run_parallel
from .regular import open_regular

# Blobs at least this large are decoded into an anonymous mapping, whose pages cost memory only once a
# frame is written to them: a bundle that declares a 1 GiB graph and fails its first frame costs one frame.
LAZY_BUFFER_BYTES = 1 << 20


def zeroed(n: int) -> bytearray | mmap.mmap:
    """A writable, zero-filled buffer of n bytes, allocated page by page as it is written if it is large."""
    return bytearray(n) if n < LAZY_BUFFER_BYTES else mmap.mmap(-1, n)


class Bundle:
    """An open bundle. Thread-safe: reads use positional I/O on one file descriptor.

    With `public_key` (a PEM file, PEM bytes or 32 raw bytes), opening fails with a SignatureError unless
    the bundle is signed by that key; the manifest is checked before it is parsed."""

    def __init__(self, path: str | os.PathLike, public_key: str | os.PathLike | bytes | None = None):
        self.path = os.fspath(path)
        self._key = None if public_key is None else signature_mod.public_key_bytes(public_key)
        try:
            self._fd = open_regular(self.path)
        except OSError as e:
            raise BundleError(f"{self.path}: cannot open: {e.strerror}") from None
        try:
            self._read_header()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    # --- opening ------------------------------------------------------------------------------------

    def _read_header(self) -> None:
        size = os.fstat(self._fd).st_size
        start = os.pread(self._fd, DATA_START, 0)
        if len(start) < len(MAGIC) or start[:len(MAGIC)] != MAGIC:
            raise BadMagic(self.path)
        if len(start) < DATA_START:
            raise TruncatedBundle(self.path, DATA_START, size)
        head = start[:HEADER_SIZE]
        _, version, flags, manifest_offset, manifest_len, signature_len = HEADER.unpack(head)
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedVersion(self.path, version, SUPPORTED_VERSIONS)
        if flags & ~KNOWN_FLAGS:
            raise InvalidManifest(self.path, f"header flags {flags:#x} include ones this runtime does not know")
        if manifest_len > MAX_MANIFEST_BYTES:
            raise ManifestTooLarge(self.path, manifest_len, MAX_MANIFEST_BYTES)
        if signature_len > MAX_SIGNATURE_BYTES:
            raise LimitExceeded(self.path, "signature length", signature_len, MAX_SIGNATURE_BYTES)
        if manifest_offset < DATA_START:
            raise InvalidManifest(self.path, f"manifest offset {manifest_offset} lies inside the header")
        if any(start[HEADER_SIZE:]):
            raise InvalidManifest(self.path, f"bytes {HEADER_SIZE} to {DATA_START} of the header are reserved "
                                             "and must be zero")
        declared = manifest_offset + manifest_len + signature_len
        if declared > size:
            raise TruncatedBundle(self.path, declared, size)
        if declared < size:
            raise TrailingBytes(self.path, declared, size)
        self.version = version
        self.file_size = size
        self.manifest_bytes = os.pread(self._fd, manifest_len, manifest_offset)
        self.signature = os.pread(self._fd, signature_len, manifest_offset + manifest_len)
        self.signer = signature_mod.signer_key_id(self.signature)  # hex key id, or None if unsigned
        if self.signature and self.signer is None:  # no room for anything but a well-formed block
            raise BadSignature(self.path, f"the {signature_len} bytes after the manifest are not an edgepack "
                                          "signature block")
        self.header = head
        self.flags = flags
        self.manifest_offset = manifest_offset
        self.data_start = DATA_START
        self.signed_data_digest: bytes | None = None
        if self._key is not None:  # before parsing: with a key, an unsigned manifest is never parsed
            self.signed_data_digest = signature_mod.check(self.path, head, self.manifest_bytes, self.signature,
                                                          self._key)
        obj = manifest_mod.loads(self._manifest_json(flags), self.path)
        self.manifest: Manifest = manifest_mod.parse(obj, self.path, FORMAT_NAME, version)
        self._sha256: Callable[..., Any] | None = None  # chosen on first use (runtime/digest.py)
        if self.manifest.data_length != manifest_offset - DATA_START:
            raise InvalidManifest(self.path, f"data_length {self.manifest.data_length} disagrees with the header "
                                             f"({manifest_offset - DATA_START} bytes of data)")

    def fileno(self) -> int:
        return self._fd

    def sha256(self, data: bytes | bytearray | memoryview = b"") -> Any:
        """A SHA-256 object (fed `data`) of the implementation suited to this bundle's size. Chosen on first
        use: loading OpenSSL takes ~7 ms, which a mapped load spends on its hashing thread."""
        if self._sha256 is None:
            self._sha256 = sha256_for(self.manifest.raw_bytes)
        return self._sha256(data)

    def _manifest_json(self, flags: int) -> bytes | bytearray:
        """The manifest's JSON bytes: stored as is, or as one zstd frame of at most MAX_MANIFEST_BYTES."""
        if not flags & FLAG_MANIFEST_ZSTD:
            return self.manifest_bytes
        try:
            declared = zstandard.frame_content_size(self.manifest_bytes)
        except zstandard.ZstdError:
            raise InvalidManifest(self.path, "the compressed manifest is not a zstd frame") from None
        if declared < 0:
            raise InvalidManifest(self.path, "the compressed manifest does not declare its size")
        if declared > MAX_MANIFEST_BYTES:
            raise ManifestTooLarge(self.path, declared, MAX_MANIFEST_BYTES)
        out = bytearray(declared)
        try:
            zstd_decode_into(memoryview(self.manifest_bytes), memoryview(out))
        except CodecError as e:
            raise InvalidManifest(self.path, f"the compressed manifest is corrupt: {e}") from None
        return out  # decoded as it is: a copy would cost the manifest's size again

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # --- reading ------------------------------------------------------------------------------------

    def read_stored(self, offset: int, length: int) -> bytes:
        """`length` stored bytes at `offset` in the data section (already checked to lie inside the file)."""
        data = os.pread(self._fd, length, self.data_start + offset)
        if len(data) != length:
            raise TruncatedBundle(self.path, self.data_start + offset + length, os.fstat(self._fd).st_size)
        return data

    def read_into(self, offset: int, buf: memoryview) -> None:
        """Fill `buf` with stored bytes at `offset` in the data section, without allocating."""
        filled = 0
        while filled < len(buf):
            n = os.preadv(self._fd, [buf[filled:]], self.data_start + offset + filled)
            if not n:  # the file shrank after it was opened: preadv returns 0 at its end, for ever
                raise TruncatedBundle(self.path, self.data_start + offset + len(buf), os.fstat(self._fd).st_size)
            filled += n

    def decode_frame(self, blob: Blob, frame: Frame, out: memoryview, payload: bytearray | None = None,
                     check: bool = True) -> None:
        """Decode one frame into `out` (its raw length) and check its SHA-256. `payload`, if given, is a
        reusable buffer of at least the frame's stored length for reading into."""
        if payload is not None and hasattr(os, "preadv"):
            stored = memoryview(payload)[:frame.length]
            self.read_into(frame.offset, stored)
        else:
            stored = memoryview(self.read_stored(frame.offset, frame.length))
        try:
            DECODERS[blob.codec].decode_into(stored, frame.as_dict(), out)
        except CodecError as e:
            raise CorruptTensor(self.path, blob.name, f"frame at raw offset {frame.raw_offset}: {e}") from None
        if check and self.sha256(out).hexdigest() != frame.sha256:
            raise CorruptTensor(self.path, blob.name,
                                f"SHA-256 mismatch in the frame at raw offset {frame.raw_offset}")

    def read_blob(self, blob: Blob, threads: int | None = None) -> bytearray | mmap.mmap:
        """A blob's raw bytes, every frame decoded (on several threads) and checked."""
        check_fits(self.path, blob.raw_length)
        try:
            out = zeroed(blob.raw_length)
        except (MemoryError, OSError):  # mmap fails with ENOMEM under a memory limit (ulimit -v, cgroups)
            raise TooLargeForDevice(self.path, blob.raw_length) from None
        view = memoryview(out)
        local = threading.local()  # one stored-bytes buffer per thread, reused: no allocation per frame
        largest = max((f.length for f in blob.frames), default=0)

        def job(f: Frame) -> None:
            payload = getattr(local, "payload", None)
            if payload is None:
                payload = local.payload = bytearray(largest)
            self.decode_frame(blob, f, view[f.raw_offset:f.raw_offset + f.raw_length], payload)

        run_parallel([functools.partial(job, f) for f in blob.frames], threads or default_threads())
        return out

    def read_graph(self) -> bytearray | mmap.mmap:
        return self.read_blob(self.manifest.graph)

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as a numpy array (bfloat16, float8 and 4-bit types come back as their raw bytes)."""
        try:
            entry = self.manifest.tensor(name)
        except NoSuchTensor:
            raise NoSuchTensor(name, self.path) from None
        data = self.read_blob(entry)
        if entry.dtype in ("uint4", "int4"):
            return np.frombuffer(data, np.uint8)
        return np.frombuffer(data, numpy_dtype(entry.dtype)).reshape(entry.shape)

    def verify(self) -> list[str]:
        """Check every hash (frames and whole blobs), the zero padding and, for a bundle opened with a public
        key, the signed digest of the data section. Returns the problems found."""
        problems: list[str] = []
        for blob in (self.manifest.graph, *self.manifest.tensors):
            try:
                digest = self.sha256()
                for frame in blob.frames:
                    out = memoryview(bytearray(frame.raw_length))
                    self.decode_frame(blob, frame, out)
                    digest.update(out)
                if digest.hexdigest() != blob.sha256:
                    raise CorruptTensor(self.path, blob.name, "SHA-256 of the whole tensor does not match")
            except CorruptTensor as e:
                problems.append(str(e))
        problems.extend(self._check_padding())
        if self.signed_data_digest is not None and self.data_digest() != self.signed_data_digest:
            problems.append(f"{self.path}: the data section's bytes are not the ones signed (SHA-256 differs)")
        return problems

    def data_digest(self) -> bytes:
        """SHA-256 of the data section as stored, read a MiB at a time."""
        digest = sha256_for(self.manifest.data_length)()
        for pos in range(0, self.manifest.data_length, 1 << 20):
            digest.update(self.read_stored(pos, min(1 << 20, self.manifest.data_length - pos)))
        return digest.digest()

    def _check_padding(self) -> list[str]:
        padding = [os.pread(self._fd, DATA_START - HEADER_SIZE, HEADER_SIZE)]
        pos = 0
        for blob in (self.manifest.graph, *self.manifest.tensors):
            padding.append(self.read_stored(pos, blob.offset - pos))
            pos = blob.offset + blob.length
        padding.append(self.read_stored(pos, self.manifest.data_length - pos))
        if any(any(gap) for gap in padding):
            return [f"{self.path}: padding between blobs is not all zero bytes"]
        return []


def open_bundle(path: str | os.PathLike, public_key: str | os.PathLike | bytes | None = None) -> Bundle:
    """Open a bundle and read its manifest only. Use as a context manager, or call close().
    With `public_key`, refuse it (SignatureError) unless that key signed it."""
    return Bundle(path, public_key)


def inspect(path: str | os.PathLike) -> Manifest:
    """The manifest of a bundle, without reading any tensor data."""
    with open_bundle(path) as bundle:
        return bundle.manifest
