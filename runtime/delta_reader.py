"""The delta reader: opens a delta, checks its header, index and the result's manifest, reads no payload.

    with open_delta("update.edgedelta") as d:
        d.base_sha256, d.result.manifest.tensors, d.ops   # what it applies to, what it makes, how

Every size comes from the file, so each is checked against the file's real size and the format's limits
before anything is allocated (docs/FORMAT.md, "Deltas"). The index is hashed in the header, so a changed
byte in it is reported as corruption, not misread as another base or another result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import zstandard

from . import manifest as manifest_mod
from .codecs import DECODERS, CodecError, zstd_decode_into
from .delta_format import (
    DELTA_DATA_START, DELTA_FLAG_INDEX_ZSTD, DELTA_FORMAT_NAME, DELTA_HEADER, DELTA_KNOWN_FLAGS, DELTA_MAGIC,
    MAX_INDEX_BYTES, MAX_ZSTD_SETTINGS, OP_COPY, OP_LITERAL, OPS, RESULT_GROWTH, RESULT_SLACK,
    SUPPORTED_DELTA_VERSIONS, TRANSFORM_WIDTHS, TRANSFORMS, ZSTD_LEVEL_RANGE, ZSTD_PARAM_RANGES, BadDeltaMagic,
    CorruptDelta, InvalidDelta, TruncatedDelta, UnsupportedDeltaVersion,
)
from .digest import sha256_for
from .errors import BundleError, NotARegularFile
from .format import (
    DATA_START, DTYPES, FLAG_MANIFEST_ZSTD, HEADER, KNOWN_FLAGS, MAGIC, MAX_MANIFEST_BYTES, SIGNATURE_BLOCK_SIZE,
    VERSION, Codec,
)
from .manifest import Blob, Frame, Manifest, TensorEntry
from .regular import open_regular
from .signature import signer_key_id

_FREE_FORM_DEPTH = 8


@dataclass(frozen=True)
class Part:
    """How one zstd-coded part of a result frame (the frame, or one plane) is re-encoded: with zstd setting
    `setting`, or, when `setting` is None, as the `length` stored bytes at `offset` in the delta."""

    setting: int | None
    offset: int = 0
    length: int = 0


@dataclass(frozen=True)
class DiffFrame:
    frame: Frame              # the result frame it rebuilds
    codec: str                # how the difference is stored
    params: dict[str, Any]    # the codec's keys (planes)
    offset: int               # of the stored difference, in the delta's data section
    length: int
    parts: tuple[Part, ...]   # one per zstd part of the result frame

    def as_dict(self) -> dict[str, Any]:
        return {"length": self.length, "raw_length": self.frame.raw_length, "sha256": self.frame.sha256,
                **self.params}


@dataclass(frozen=True)
class BlobOp:
    op: str
    result: Blob                   # the result's blob this op makes
    base: str = ""                 # copy and diff: the name of the base's blob
    sha256: str = ""               # copy and literal: SHA-256 of the stored bytes
    offset: int = 0                # literal: where its bytes are in the delta's data section
    transform: str = ""            # diff
    width: int = 1                 # diff: element width of the transform
    frames: tuple[DiffFrame, ...] = ()

    @property
    def delta_bytes(self) -> int:
        """Bytes of the delta's data section this op uses."""
        if self.op == OP_LITERAL:
            return self.result.length
        return sum(f.length + sum(p.length for p in f.parts) for f in self.frames)


@dataclass(frozen=True)
class Result:
    header: bytes            # the result's 40-byte bundle header
    manifest_bytes: bytes    # as stored
    signature: bytes         # the signature block, or b""
    manifest: Manifest
    file_bytes: int
    sha256: str              # of the whole result file


def zstd_parts(frame: Frame, codec: str) -> int:
    """How many zstd-coded parts a result frame's stored bytes have."""
    if codec == Codec.ZSTD:
        return 1
    if codec == Codec.PLANES:
        return sum(1 for plane_codec, _ in frame.params["planes"] if plane_codec == Codec.ZSTD)
    return 0


class Delta:
    """An open delta. Payloads are read with positional I/O on one file descriptor."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._fd = open_regular(self.path)  # refuses a FIFO, directory, device or /proc file; never blocks
        except NotARegularFile as e:
            raise InvalidDelta(self.path, f"it is {e.what}, not a delta file; give the path of a regular "
                                          ".edgedelta file") from None
        except OSError as e:
            raise InvalidDelta(self.path, f"cannot open: {e.strerror}") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, DELTA_DATA_START, 0)
        if len(head) < len(DELTA_MAGIC) or head[:len(DELTA_MAGIC)] != DELTA_MAGIC:
            raise BadDeltaMagic(self.path)
        if len(head) < DELTA_DATA_START:
            raise TruncatedDelta(self.path, DELTA_DATA_START, size)
        _, version, flags, index_offset, index_length, index_sha = DELTA_HEADER.unpack(head)
        if version not in SUPPORTED_DELTA_VERSIONS:
            raise UnsupportedDeltaVersion(self.path, version)
        if flags & ~DELTA_KNOWN_FLAGS:
            raise InvalidDelta(self.path, f"header flags {flags:#x} include ones this runtime does not know")
        if index_length > MAX_INDEX_BYTES:
            raise InvalidDelta(self.path, f"index of {index_length} bytes exceeds the limit of {MAX_INDEX_BYTES}")
        if index_offset < DELTA_DATA_START:
            raise InvalidDelta(self.path, f"index offset {index_offset} lies inside the header")
        if index_offset + index_length > size:
            raise TruncatedDelta(self.path, index_offset + index_length, size)
        if index_offset + index_length < size:
            raise CorruptDelta(self.path, f"{size - index_offset - index_length} bytes after the index")
        stored = os.pread(self._fd, index_length, index_offset)
        if sha256_for(len(stored))(stored).digest() != index_sha:
            raise CorruptDelta(self.path, "the index's SHA-256 does not match the header")
        self.file_size = size
        self.version = version
        self.data_length = index_offset - DELTA_DATA_START
        text = _unpack(self.path, stored, "index") if flags & DELTA_FLAG_INDEX_ZSTD else stored
        try:  # the manifest's checks, reused, raise bundle errors: a delta's problems are delta errors
            self.index = manifest_mod.loads(text, self.path)
            self._parse(self.index)
        except BundleError as e:
            raise InvalidDelta(self.path, str(e).removeprefix(f"{self.path}: ")) from None

    # --- the index ------------------------------------------------------------------------------------

    def _parse(self, obj: dict[str, Any]) -> None:
        c = manifest_mod._Checker(self.path)
        c.obj(obj, "index", {"format", "version", "base", "result", "zstd", "blobs", "provenance"})
        if obj["format"] != DELTA_FORMAT_NAME or obj["version"] != self.version:
            raise InvalidDelta(self.path, f"format/version fields say {manifest_mod.show(obj['format'])} "
                                          f"{manifest_mod.show(obj['version'])}")
        if not isinstance(obj["provenance"], dict) or manifest_mod._depth(obj["provenance"]) > _FREE_FORM_DEPTH:
            raise InvalidDelta(self.path, f"provenance must be an object nesting at most {_FREE_FORM_DEPTH} levels")
        base = c.obj(obj["base"], "base", {"manifest_sha256", "bytes"})
        self.base_sha256 = c.sha(base["manifest_sha256"], "base.manifest_sha256")
        self.base_bytes = c.int(base["bytes"], "base.bytes")
        self.settings = self._settings(c, obj["zstd"])
        self._pos = 0
        self.result = self._result(c, obj["result"])
        blobs = obj["blobs"]
        results = (self.result.manifest.graph, *self.result.manifest.tensors)
        if not isinstance(blobs, list) or len(blobs) != len(results):
            raise InvalidDelta(self.path, f"blobs must list {len(results)} operations, one per blob of the result")
        self.ops = tuple(self._op(c, b, r, i) for i, (b, r) in enumerate(zip(blobs, results)))
        if self._pos != self.data_length:
            raise CorruptDelta(self.path, f"the index uses {self._pos} bytes of data but the delta has "
                                          f"{self.data_length}")

    def _take(self, length: int, what: str) -> int:
        """Reserve the next `length` bytes of the data section (payloads lie back to back, in index order)."""
        start = self._pos
        if length > self.data_length - start:
            raise CorruptDelta(self.path, f"{what} ends at byte {start + length} of a {self.data_length}-byte "
                                          "data section")
        self._pos += length
        return start

    def _settings(self, c: manifest_mod._Checker, value: Any) -> tuple[dict[str, int], ...]:
        if not isinstance(value, list) or len(value) > MAX_ZSTD_SETTINGS:
            raise InvalidDelta(self.path, f"zstd must be a list of at most {MAX_ZSTD_SETTINGS} settings")
        out = []
        for i, s in enumerate(value):
            where = f"zstd[{i}]"
            if isinstance(s, dict) and set(s) == {"level"}:
                out.append({"level": c.int(s["level"], f"{where}.level", *ZSTD_LEVEL_RANGE)})
                continue
            c.obj(s, where, set(), set(ZSTD_PARAM_RANGES))
            if not s:
                raise InvalidDelta(self.path, f"{where} is empty")
            out.append({k: c.int(v, f"{where}.{k}", *ZSTD_PARAM_RANGES[k]) for k, v in s.items()})
        return tuple(out)

    def _result(self, c: manifest_mod._Checker, value: Any) -> Result:
        d = c.obj(value, "result", {"sha256", "bytes", "flags", "manifest_length", "signature_length"})
        sha = c.sha(d["sha256"], "result.sha256")
        flags = c.int(d["flags"], "result.flags")
        if flags & ~KNOWN_FLAGS:
            raise InvalidDelta(self.path, f"the result's header flags {flags:#x} are not ones this runtime knows")
        manifest_length = c.int(d["manifest_length"], "result.manifest_length", 1, MAX_MANIFEST_BYTES)
        signature_length = c.int(d["signature_length"], "result.signature_length", 0, SIGNATURE_BLOCK_SIZE)
        file_bytes = c.int(d["bytes"], "result.bytes")
        manifest_bytes = self.read(self._take(manifest_length, "the result's manifest"), manifest_length)
        signature = self.read(self._take(signature_length, "the result's signature"), signature_length)
        if signature and signer_key_id(signature) is None:
            raise InvalidDelta(self.path, "the result's signature block is not an edgepack signature block")
        where = f"{self.path} (the result's manifest)"
        text = _unpack(where, manifest_bytes, "manifest") if flags & FLAG_MANIFEST_ZSTD else manifest_bytes
        try:
            manifest = manifest_mod.parse(manifest_mod.loads(text, where), where, "edgepack", VERSION)
        except BundleError as e:
            raise InvalidDelta(self.path, f"the result's manifest is not valid: {e}") from None
        total = DATA_START + manifest.data_length + manifest_length + signature_length
        if total != file_bytes:
            raise InvalidDelta(self.path, f"the result's parts add up to {total} bytes, not the {file_bytes} declared")
        self.check_growth(file_bytes, self.base_bytes)
        header = HEADER.pack(MAGIC, VERSION, flags, DATA_START + manifest.data_length, manifest_length,
                             signature_length)
        return Result(header, manifest_bytes, signature, manifest, file_bytes, sha)

    def check_growth(self, file_bytes: int, base_bytes: int) -> None:
        """Refuse a result of `file_bytes` over RESULT_GROWTH x (a base of `base_bytes` + this delta) + 1 MiB.
        Opening checks it with the base size the index declares; apply_delta again with the real base file's,
        since the declared one is the delta's own word (security review 4: 10**15 lifted the bound)."""
        bound = RESULT_GROWTH * (base_bytes + self.file_size) + RESULT_SLACK
        if file_bytes > bound:
            raise InvalidDelta(self.path, f"the result would be {file_bytes} bytes, more than {RESULT_GROWTH} times "
                               f"the base and the delta together (+1 MiB: {bound}); a delta amplifying its base "
                               "this much is refused (docs/FORMAT.md, Deltas)")

    def _op(self, c: manifest_mod._Checker, value: Any, result: Blob, index: int) -> BlobOp:
        where = f"blobs[{index}] ({result.name!r})"
        if not isinstance(value, dict) or value.get("op") not in OPS:
            raise InvalidDelta(self.path, f"{where}.op must be one of {', '.join(OPS)}")
        op = value["op"]
        if op == OP_LITERAL:
            c.obj(value, where, {"op", "sha256"})
            return BlobOp(op, result, sha256=c.sha(value["sha256"], f"{where}.sha256"),
                          offset=self._take(result.length, f"{where}'s bytes"))
        if op == OP_COPY:
            c.obj(value, where, {"op", "base", "sha256"})
            return BlobOp(op, result, base=self._base_name(c, value["base"], where),
                          sha256=c.sha(value["sha256"], f"{where}.sha256"))
        c.obj(value, where, {"op", "base", "transform", "frames"})
        if not isinstance(result, TensorEntry):
            raise InvalidDelta(self.path, f"{where}: the graph is copied or carried, never diffed")
        transform = value["transform"]
        if transform not in TRANSFORMS:
            raise InvalidDelta(self.path, f"{where}.transform must be one of {', '.join(TRANSFORMS)}")
        width = transform_width(result.dtype)
        frames_in = value["frames"]
        if not isinstance(frames_in, list) or len(frames_in) != len(result.frames):
            raise InvalidDelta(self.path, f"{where}.frames must list {len(result.frames)} frames, one per frame of "
                                          "the result's tensor")
        frames = tuple(self._diff_frame(c, f, r, result.codec, width, f"{where}.frames[{i}]")
                       for i, (f, r) in enumerate(zip(frames_in, result.frames)))
        return BlobOp(op, result, base=self._base_name(c, value["base"], where), transform=transform, width=width,
                      frames=frames)

    def _base_name(self, c: manifest_mod._Checker, value: Any, where: str) -> str:
        return c.str(value, f"{where}.base")

    def _diff_frame(self, c: manifest_mod._Checker, value: Any, frame: Frame, result_codec: str, width: int,
                    where: str) -> DiffFrame:
        d = c.obj(value, where, {"codec", "length", "parts"}, {"rotate", "planes"})
        codec = d["codec"]
        if not isinstance(codec, str) or codec not in DECODERS:
            raise InvalidDelta(self.path, f"{where}.codec {manifest_mod.show(codec)} is not a known codec")
        length = c.int(d["length"], f"{where}.length")
        if frame.raw_offset % width or frame.raw_length % width:
            raise InvalidDelta(self.path, f"{where}: the result frame does not hold whole {width}-byte elements")
        params = {k: d[k] for k in DECODERS[codec].frame_keys if k in d}
        if set(d) - {"codec", "length", "parts"} - set(params):
            raise InvalidDelta(self.path, f"{where} has keys the {codec} codec does not use")
        diff = DiffFrame(frame, codec, params, 0, length, ())
        problem = DECODERS[codec].check(diff.as_dict(), width)
        if problem:
            raise InvalidDelta(self.path, f"{where}: {problem}")
        offset = self._take(length, f"{where}'s difference")
        parts_in = d["parts"]
        if not isinstance(parts_in, list) or len(parts_in) != zstd_parts(frame, result_codec):
            raise InvalidDelta(self.path, f"{where}.parts must list one entry per zstd part of the result frame "
                                          f"({zstd_parts(frame, result_codec)})")
        parts = []
        for k, p in enumerate(parts_in):
            pw = f"{where}.parts[{k}]"
            if isinstance(p, dict) and set(p) == {"zstd"}:
                parts.append(Part(c.int(p["zstd"], f"{pw}.zstd", 0, len(self.settings) - 1)))
            elif isinstance(p, dict) and set(p) == {"literal"}:
                n = c.int(p["literal"], f"{pw}.literal", 1)
                parts.append(Part(None, self._take(n, f"{pw}'s bytes"), n))
            else:
                raise InvalidDelta(self.path, f"{pw} must be {{\"zstd\": setting}} or {{\"literal\": length}}")
        return DiffFrame(frame, codec, params, offset, length, tuple(parts))

    # --- payloads -------------------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` in the data section (already checked to lie inside it)."""
        data = os.pread(self._fd, length, DELTA_DATA_START + offset)
        if len(data) != length:
            raise TruncatedDelta(self.path, DELTA_DATA_START + offset + length, os.fstat(self._fd).st_size)
        return data

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Delta:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a Delta dropped without close(): its descriptor is given back when collected
        try:
            self.close()
        except Exception:
            pass


def transform_width(dtype: str) -> int:
    """The element width (bytes) a tensor's differences are taken in."""
    size = DTYPES[dtype][2]
    return size if size in TRANSFORM_WIDTHS else 1


def _unpack(where: str, stored: bytes, what: str) -> bytes:
    """A zstd-stored JSON text: exactly one frame declaring at most MAX_INDEX_BYTES."""
    try:
        declared = zstandard.frame_content_size(stored)
    except zstandard.ZstdError:
        raise InvalidDelta(where, f"the compressed {what} is not a zstd frame") from None
    if declared < 0 or declared > MAX_INDEX_BYTES:
        raise InvalidDelta(where, f"the compressed {what} does not declare a size of at most {MAX_INDEX_BYTES}")
    out = bytearray(declared)
    try:
        zstd_decode_into(memoryview(stored), memoryview(out))
    except CodecError as e:
        raise CorruptDelta(where, f"the compressed {what} does not decode: {e}") from None
    return bytes(out)


def open_delta(path: str | os.PathLike) -> Delta:
    """Open a delta and check its header, index and result manifest. Use as a context manager."""
    return Delta(path)


def is_delta(path: str | os.PathLike) -> bool:
    """Whether the file starts with the delta magic (a cheap test for commands that take either)."""
    try:
        fd = open_regular(os.fspath(path))
    except (OSError, NotARegularFile):
        return False
    try:
        return os.pread(fd, len(DELTA_MAGIC), 0) == DELTA_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)
