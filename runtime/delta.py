"""Applying a delta on the device: the base bundle plus the delta give the new bundle, byte for byte.

    apply_delta("model-v1.edgepack", "v1-to-v2.edgedelta", "model-v2.edgepack", public_key="release.pub")

The result is streamed to a temporary file beside the output, one blob at a time, and renamed into place
only once its SHA-256 equals the one the delta names; the base is only read. Memory: the base tensor a
diff is taken against (decoded), plus a few frames (docs/FORMAT.md, "Deltas").
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
import zstandard

from . import signature as signature_mod
from .codecs import DECODERS, SCRATCH_KEEP, CodecError, _rotate_right, plane_scratch
from .delta_format import (
    OP_COPY, OP_DIFF, OP_LITERAL, RESULT_GROWTH, RESULT_SLACK, TRANSFORM_ADD, TRANSFORM_XOR, CorruptDelta, DeltaError,
    InvalidDelta, ResultMismatch, WrongBase,
)
from .delta_reader import BlobOp, Delta, DiffFrame, Result
from .digest import sha256_for
from .errors import OptionError
from .format import DATA_START, HEADER_SIZE, SIGNATURE_SIGNED_PREFIX, UINT_OF_WIDTH, Codec
from .manifest import GRAPH_NAME, Blob
from .host import check_fits
from .paths import same_file
from .reader import Bundle

_CHUNK = 1 << 20
_ZIGZAG_CHUNK = 1 << 16  # elements
_DIGEST_START = SIGNATURE_SIGNED_PREFIX - 32  # the data digest's place in a signature block


@dataclass(frozen=True)
class Applied:
    path: str
    bytes: int
    copied: int    # blobs copied from the base
    changed: int   # tensors rebuilt from a difference
    carried: int   # blobs carried whole in the delta
    signer: str | None


def base_sha256(bundle: Bundle) -> str:
    """What a delta names its base by: the SHA-256 of the bundle's manifest as stored."""
    return sha256_for(len(bundle.manifest_bytes))(bundle.manifest_bytes).hexdigest()


def apply_delta(base: str | os.PathLike, delta: str | os.PathLike, output: str | os.PathLike,
                public_key: str | os.PathLike | bytes | None = None) -> Applied:
    """Write the bundle that `delta` makes from `base` to `output`, atomically. With `public_key`, refuse
    (SignatureError) before writing anything unless the result is signed by that key."""
    out = os.fspath(output)
    if os.path.exists(out) and os.path.exists(base) and os.path.samefile(out, base):
        raise OptionError(f"{out}: the output would replace the base; write the new bundle elsewhere")
    if same_file(out, delta):
        raise OptionError(f"{out}: the output would replace the update it is made from; write the new bundle "
                          "elsewhere")
    with Delta(delta) as d, Bundle(base) as b:
        actual = base_sha256(b)
        if actual != d.base_sha256:
            raise WrongBase(d.path, b.path, d.base_sha256, actual)
        d.check_growth(d.result.file_bytes, b.file_size)  # the real base's size: base.bytes is only declared
        sources = _bind(d, b)
        _check_diff_work(d, b, sources)
        if public_key is not None:
            key = signature_mod.public_key_bytes(public_key)
            signature_mod.check(f"{d.path} (the bundle it makes)", d.result.header, d.result.manifest_bytes,
                                d.result.signature, key)
        largest = max((sources[op.base].raw_length for op in d.ops if op.op == OP_DIFF), default=0)
        check_fits(b.path, 2 * largest)
        builder = _Builder(d, b, sources)
        _write_atomic(out, builder.chunks(), os.fstat(b.fileno()).st_mode & 0o777)
        count = {kind: sum(op.op == kind for op in d.ops) for kind in (OP_COPY, OP_DIFF, OP_LITERAL)}
        return Applied(out, d.result.file_bytes, count[OP_COPY], count[OP_DIFF], count[OP_LITERAL],
                       signature_mod.signer_key_id(d.result.signature) if d.result.signature else None)


def _bind(d: Delta, b: Bundle) -> dict[str, Blob]:
    """The base blobs the delta's ops name, each checked to fit the op."""
    blobs: dict[str, Blob] = {GRAPH_NAME: b.manifest.graph, **{t.name: t for t in b.manifest.tensors}}
    for op in d.ops:
        if op.op == OP_LITERAL:
            continue
        source = blobs.get(op.base)
        if source is None:
            raise InvalidDelta(d.path, f"{op.result.name!r} is made from the base's {op.base!r}, which the base "
                                       "does not have")
        if op.op == OP_COPY and source.length != op.result.length:
            raise InvalidDelta(d.path, f"{op.result.name!r} copies {op.base!r}, which stores {source.length} bytes, "
                                       f"not {op.result.length}")
        if op.op == OP_DIFF and (getattr(source, "dtype", None) != getattr(op.result, "dtype", None)
                                 or source.raw_length != op.result.raw_length):
            raise InvalidDelta(d.path, f"{op.result.name!r} is a difference against {op.base!r}, which has "
                                       "another dtype or size")
    return blobs


def _check_diff_work(d: Delta, b: Bundle, sources: dict[str, Blob]) -> None:
    """Refuse diffs that together rebuild more than RESULT_GROWTH x the base's decoded bytes (+ RESULT_SLACK):
    each decodes its whole base tensor and rebuilds, hashes and re-encodes one as large, whatever the few
    bytes its result stores, so 100 diffs of one 16 MiB tensor in a 55.6 KB delta took 24 s (security review
    4). A real delta diffs each base tensor about once."""
    work = sum(sources[op.base].raw_length for op in d.ops if op.op == OP_DIFF)
    bound = RESULT_GROWTH * b.manifest.raw_bytes + RESULT_SLACK
    if work > bound:
        raise InvalidDelta(d.path, f"its diffs rebuild {work} bytes, more than {RESULT_GROWTH} times the base's "
                                   f"decoded bytes (+1 MiB: {bound}); a delta diffing the same base tensors over and "
                                   "over is refused (docs/FORMAT.md, Deltas)")


class _Builder:
    """The result's bytes, in file order, each checked as it is made."""

    def __init__(self, delta: Delta, base: Bundle, sources: dict[str, Blob]):
        self.delta, self.base, self.sources = delta, base, sources
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}

    def chunks(self) -> Iterator[bytes]:
        r: Result = self.delta.result
        whole = sha256_for(r.file_bytes)()
        data = sha256_for(r.manifest.data_length)()
        head = r.header + bytes(DATA_START - HEADER_SIZE)
        whole.update(head)
        yield head
        pos = 0
        for op in self.delta.ops:
            for chunk in self._blob(op, pos):
                whole.update(chunk)
                data.update(chunk)
                yield chunk
            pos = op.result.offset + op.result.length
        tail = bytes(r.manifest.data_length - pos)
        data.update(tail)
        for chunk in (tail, r.manifest_bytes, r.signature):
            whole.update(chunk)
            yield chunk
        if r.signature and data.digest() != r.signature[_DIGEST_START:SIGNATURE_SIGNED_PREFIX]:
            raise ResultMismatch(self.delta.path, "its data section is not the one its signature vouches for")
        if whole.hexdigest() != r.sha256:
            raise ResultMismatch(self.delta.path, f"its SHA-256 is {whole.hexdigest()}, the delta names {r.sha256}")

    def _blob(self, op: BlobOp, pos: int) -> Iterator[bytes]:
        yield bytes(op.result.offset - pos)
        if op.op == OP_COPY:
            source = self.sources[op.base]
            yield from self._checked(op, lambda at, n: self.base.read_stored(source.offset + at, n),
                                     ResultMismatch(self.delta.path, f"the base's stored bytes of {op.base!r} do "
                                                    f"not have the SHA-256 {op.sha256} it was made against"))
        elif op.op == OP_LITERAL:
            yield from self._checked(op, lambda at, n: self.delta.read(op.offset + at, n),
                                     CorruptDelta(self.delta.path, f"the bytes it carries for {op.result.name!r} "
                                                                   "do not match their SHA-256"))
        else:
            old = self.base.read_blob(self.sources[op.base])
            try:
                for frame in op.frames:
                    yield from self._frame(op, frame, old)
            finally:
                del old

    def _checked(self, op: BlobOp, read: Callable[[int, int], bytes],
                 error: DeltaError) -> Iterator[bytes]:
        """The op's stored bytes a MiB at a time, then its SHA-256 checked (the temporary file is discarded
        if it fails)."""
        digest = sha256_for(op.result.length)()
        for at in range(0, op.result.length, _CHUNK):
            chunk = read(at, min(_CHUNK, op.result.length - at))
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != op.sha256:
            raise error

    def _frame(self, op: BlobOp, diff: DiffFrame, old: Any) -> Iterator[Any]:
        frame = diff.frame
        name = op.result.name
        where = f"tensor {name!r}, frame at raw offset {frame.raw_offset}"
        new = bytearray(frame.raw_length)
        try:
            DECODERS[diff.codec].decode_into(memoryview(self.delta.read(diff.offset, diff.length)), diff.as_dict(),
                                            memoryview(new))
        except CodecError as e:
            raise CorruptDelta(self.delta.path, f"{where}: the difference does not decode ({e})") from None
        kind = UINT_OF_WIDTH[op.width]
        if op.transform in (TRANSFORM_XOR, TRANSFORM_ADD):
            a = np.frombuffer(old, kind, frame.raw_length // op.width, frame.raw_offset)
            d = np.frombuffer(new, kind)
            if op.transform == TRANSFORM_ADD:
                unzigzag(d)
                np.add(a, d, out=d)
            else:
                np.bitwise_xor(a, d, out=d)
        if sha256_for(len(new))(new).hexdigest() != frame.sha256:
            raise CorruptDelta(self.delta.path, f"{where}: the rebuilt bytes do not match the result's SHA-256")
        return self._encode(op, diff, new, where)

    def _encode(self, op: BlobOp, diff: DiffFrame, raw: bytearray, where: str) -> Iterator[Any]:
        """The result frame's stored bytes, encoded as its manifest entry says (docs/FORMAT.md, Codecs), in
        pieces (a plane at a time: `raw` is rotated in place, and no piece is copied to be joined)."""
        codec, parts = op.result.codec, iter(diff.parts)
        if codec == Codec.RAW:
            pieces: list[Any] = [raw]
        elif codec == Codec.ZSTD:
            pieces = [self._zstd(next(parts), raw)]
        else:
            planes = diff.frame.params["planes"]
            pieces = []
            for k, plane in enumerate(split_planes(raw, len(planes), diff.frame.params["rotate"])):
                piece = plane if planes[k][0] == Codec.RAW else self._zstd(next(parts), plane)
                if len(piece) != planes[k][1]:
                    raise self._mismatch(where, f"plane {k} encodes to {len(piece)} bytes, not {planes[k][1]}")
                pieces.append(piece)
        stored = sum(len(p) for p in pieces)
        if stored != diff.frame.length:
            raise self._mismatch(where, f"it encodes to {stored} bytes, not {diff.frame.length}")
        return iter(pieces)

    def _zstd(self, part: Any, data: Any) -> bytes:
        if part.setting is None:
            return self.delta.read(part.offset, part.length)
        compressor = self.compressors.get(part.setting)
        if compressor is None:
            compressor = self.compressors[part.setting] = zstd_compressor(self.delta.settings[part.setting])
        return compressor.compress(data)

    def _mismatch(self, where: str, problem: str) -> ResultMismatch:
        made_with = self.delta.index["provenance"].get("zstd_version", "unknown")
        return ResultMismatch(self.delta.path, f"{where}: {problem} (this runtime's zstd is "
                                               f"{'.'.join(map(str, zstandard.ZSTD_VERSION))}, the delta was made "
                                               f"with {str(made_with)[:20]}); ask for a delta made with --literal")


def unzigzag(d: np.ndarray) -> None:
    """Map zigzag codes 0, 1, 2, 3, ... back to the differences 0, -1, 1, -2, ... in place (modulo 2**bits),
    in chunks, so that the scratch stays small."""
    one = d.dtype.type(1)
    sign = np.empty(min(len(d), _ZIGZAG_CHUNK), d.dtype)
    for start in range(0, len(d), _ZIGZAG_CHUNK):
        part = d[start:start + _ZIGZAG_CHUNK]
        s = sign[:len(part)]
        np.bitwise_and(part, one, out=s)
        np.negative(s, out=s)
        np.right_shift(part, one, out=part)
        np.bitwise_xor(part, s, out=part)


def zstd_compressor(setting: dict[str, int]) -> zstandard.ZstdCompressor:
    """A compressor for one of a delta's zstd settings: frames carry their content size and no checksum."""
    if set(setting) == {"level"}:
        return zstandard.ZstdCompressor(level=setting["level"], write_content_size=True, write_checksum=False)
    params = zstandard.ZstdCompressionParameters(write_content_size=True, write_checksum=False, **setting)
    return zstandard.ZstdCompressor(compression_params=params)


def split_planes(data: bytearray, width: int, rotate: int) -> list[np.ndarray]:
    """Plane k holds byte k (least significant first) of every `width`-byte element of `data`, each element
    rotated left by `rotate` bits first: the planes codec's split (docs/FORMAT.md). The rotation is done in
    place: `data` is changed."""
    elements = np.frombuffer(data, UINT_OF_WIDTH[width])
    if rotate:
        _rotate_right(elements, 8 * width - rotate, plane_scratch(min(len(data), SCRATCH_KEEP)))
    grid = elements.view(np.uint8).reshape(-1, width)
    return [np.ascontiguousarray(grid[:, k]) for k in range(width)]


def _write_atomic(path: str, chunks: Iterator[bytes], mode: int) -> None:
    """Write the chunks to a hidden temporary file beside `path`, fsync, rename; remove it on any error."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OptionError(f"{path}: cannot write there ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
