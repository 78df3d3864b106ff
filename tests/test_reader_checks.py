"""The reader's own checks (runtime/reader.py), each shown to matter (issue 19: they survived a mutation test):
the data digest the signer and verify() share covers every stored byte, a file that shrinks after it is opened
is a TruncatedBundle (not a loop), and edgepack.runtime.inspect returns the manifest."""

import hashlib
import os
import pathlib

import numpy as np
import pytest

import edgepack.runtime as rt
from edgepack.runtime import errors as E
from edgepack.runtime import open_bundle
from edgepack.runtime.format import DATA_START, MAX_SIGNATURE_BYTES

import bundles
import prebuilt

EMPTY = {"format": "edgepack", "version": 1, "tensors": [], "target": {}, "provenance": {}, "report": {}}


@pytest.fixture(scope="module")
def good(cases):
    return pathlib.Path(cases[prebuilt.ERRORS_CASE].bundle).read_bytes()


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A bundle of 3.5 MiB + 17 bytes of stored data (an opaque graph blob of random bytes, coded raw), so
    that a digest which skipped any MiB, or the last partial one, differs."""
    raw = np.random.default_rng(19).integers(0, 256, 7 * 2 ** 19 + 17, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("large") / "large.edgepack"
    path.write_bytes(bundles.build(EMPTY, raw, [], codec="raw"))
    return path


def test_the_data_digest_covers_every_byte(large):
    data = large.read_bytes()
    _, section, _, _ = bundles.parts(data)
    assert len(section) > 3 * 2 ** 20
    with open_bundle(large) as b:
        assert b.manifest.data_length == len(section)
        assert b.data_digest() == hashlib.sha256(section).digest()
        assert b.verify() == []


@pytest.mark.parametrize("where", [0, 2 ** 20 + 5, 2 * 2 ** 20 + 1, 3 * 2 ** 20 + 9])
def test_the_data_digest_sees_one_changed_byte_in_any_mib(tmp, large, where):
    data = bytearray(large.read_bytes())
    with open_bundle(large) as b:
        before = b.data_digest()
    data[DATA_START + where] ^= 1
    path = tmp / "changed.edgepack"
    path.write_bytes(bytes(data))
    with open_bundle(path) as b:
        assert b.data_digest() != before


def _shrunk(tmp, good, keep: int):
    path = tmp / "shrinking.edgepack"
    path.write_bytes(good)
    b = open_bundle(path)
    os.truncate(path, keep)
    return b


def test_a_file_that_shrinks_after_opening_is_truncated_for_each_reader(tmp, good):
    """read_blob reads with preadv (read_into); verify() reads each frame with pread (read_stored)."""
    b = _shrunk(tmp, good, DATA_START + 8)
    try:
        name = b.manifest.tensors[-1].name
        with pytest.raises(E.TruncatedBundle, match="truncated"):
            b.tensor(name)
        with pytest.raises(E.TruncatedBundle, match="truncated"):
            b.read_stored(b.manifest.tensors[-1].offset, 16)
        with pytest.raises(E.TruncatedBundle):
            b.verify()
        with pytest.raises(E.TruncatedBundle):
            b.read_into(0, memoryview(bytearray(64)))
    finally:
        b.close()


def test_a_read_ending_exactly_at_the_end_of_the_file_is_whole(tmp, good):
    with open_bundle(bundles_path(tmp, good)) as b:
        n = b.manifest.data_length
        buf = bytearray(64)
        b.read_into(n - 64, memoryview(buf))
        assert bytes(buf) == b.read_stored(n - 64, 64) == good[DATA_START + n - 64:DATA_START + n]


def bundles_path(tmp, data):
    path = tmp / "x.edgepack"
    path.write_bytes(data)
    return path


def test_inspect_returns_the_manifest_without_decoding(tmp, good):
    path = bundles_path(tmp, good)
    m = rt.inspect(path)
    assert isinstance(m, rt.Manifest) and len(m.tensors) == 6
    with open_bundle(path) as b:
        assert m == b.manifest
    with pytest.raises(E.BadMagic):
        rt.inspect(bundles_path(tmp, b"x" * 100))


def test_the_signature_length_is_allowed_up_to_the_limit(tmp, good):
    """MAX_SIGNATURE_BYTES of signature space is read (and is then no well-formed block); one more is refused
    before anything is read."""
    _, section, manifest, _ = bundles.parts(good)
    at = bundles.assemble(section, manifest, signature=bytes(MAX_SIGNATURE_BYTES))
    with pytest.raises(E.BadSignature, match=f"the {MAX_SIGNATURE_BYTES} bytes after the manifest"):
        open_bundle(bundles_path(tmp, at))
    over = bundles.assemble(section, manifest, signature=bytes(MAX_SIGNATURE_BYTES + 1))
    with pytest.raises(E.LimitExceeded, match="signature length"):
        open_bundle(bundles_path(tmp, over))


def test_a_blob_of_several_frames_is_read_whole_on_one_thread_or_several(large):
    raw = bytes(bundles.parts(large.read_bytes())[1])
    with open_bundle(large) as b:
        graph = b.manifest.graph
        assert len(graph.frames) == 4 and graph.frames[-1].raw_length < graph.frames[0].raw_length
        for threads in (1, 2, 3):
            assert bytes(b.read_blob(graph, threads=threads)) == raw[:graph.raw_length]


def test_the_first_failing_frame_is_the_one_reported(tmp, large):
    data = bytearray(large.read_bytes())
    with open_bundle(large) as b:
        frames = b.manifest.graph.frames
        for f in frames[1:3]:
            data[DATA_START + f.offset + 3] ^= 1
    path = bundles_path(tmp, bytes(data))
    with open_bundle(path) as b:
        with pytest.raises(E.CorruptTensor, match=f"raw offset {frames[1].raw_offset}\\b"):
            b.read_blob(b.manifest.graph, threads=2)


def test_the_header_fields_are_kept(tmp, good):
    with open_bundle(bundles_path(tmp, good)) as b:
        assert b.version == 1 and b.header == good[:40] and b.flags == good[12]
        assert os.fstat(b.fileno()).st_size == len(good) == b.file_size
        assert b.manifest.raw_bytes == b.manifest.graph.raw_length + sum(t.raw_length for t in b.manifest.tensors)
        assert b.manifest.stored_bytes == b.manifest.graph.length + sum(t.length for t in b.manifest.tensors)
        with pytest.raises(AttributeError):
            b.manifest.data_length = 0  # the parsed manifest is immutable


def test_closing_twice_and_a_failed_open_close_only_their_own_descriptor(tmp, good):
    import gc

    b = open_bundle(bundles_path(tmp, good))
    b.close()
    b.close()
    try:
        open_bundle(bundles_path(tmp, b"\x89EDGEPK\n" + bytes(10)))
    except E.TruncatedBundle as e:
        kept = e  # its traceback keeps the failed Bundle alive
    other = os.open(bundles_path(tmp, good), os.O_RDONLY)  # reuses the number the failed open closed
    try:
        del kept
        gc.collect()
        assert os.fstat(other).st_size == len(good)
    finally:
        os.close(other)


def test_a_path_that_cannot_be_opened(tmp):
    with pytest.raises(E.BundleError, match="cannot open: No such file"):
        open_bundle(tmp / "missing.edgepack")


def test_padding_must_be_zero_in_every_gap(tmp, good):
    _, section, m, _ = bundles.parts(good)
    blobs = [m["graph"], *m["tensors"]]
    gaps = [(a["offset"] + a["length"], b["offset"]) for a, b in zip(blobs, blobs[1:])
            if b["offset"] > a["offset"] + a["length"]]
    assert gaps
    for at in (gaps[0][0], gaps[-1][1] - 1):
        data = bytearray(good)
        data[DATA_START + at] = 1
        with open_bundle(bundles_path(tmp, bytes(data))) as b:
            assert b.verify() == [f"{tmp / 'x.edgepack'}: padding between blobs is not all zero bytes"]
    tail = bundles.assemble(section + b"\0" * 7 + b"\1", m)
    tail = bundles.edit_manifest(tail, lambda mm: mm.update(data_length=len(section) + 8))
    with open_bundle(bundles_path(tmp, tail)) as b:
        assert b.verify() == [f"{tmp / 'x.edgepack'}: padding between blobs is not all zero bytes"]


def test_the_whole_blob_hash_is_checked_as_well_as_each_frame(tmp, good):
    bad = bundles.edit_manifest(good, lambda m: m["tensors"][0].update(sha256="0" * 64))
    with open_bundle(bundles_path(tmp, bad)) as b:
        problems = b.verify()
    assert len(problems) == 1 and "SHA-256 of the whole tensor does not match" in problems[0]


def test_truncation_messages_name_the_bytes_declared(tmp, good):
    b = _shrunk(tmp, good, DATA_START + 8)
    try:
        t = b.manifest.tensors[-1]
        with pytest.raises(E.TruncatedBundle, match=f"declares {DATA_START + t.offset + 16} bytes but the file has "
                                                    f"{DATA_START + 8}"):
            b.read_stored(t.offset, 16)
        with pytest.raises(E.TruncatedBundle, match=f"declares {DATA_START + 8 + 64} bytes but the file has"):
            b.read_into(8, memoryview(bytearray(64)))
    finally:
        b.close()


def test_an_empty_compressed_manifest_is_invalid_json(tmp, good):
    import zstandard

    from edgepack.runtime.format import FLAG_MANIFEST_ZSTD

    _, section, _, _ = bundles.parts(good)
    empty = zstandard.ZstdCompressor(write_content_size=True).compress(b"")
    with pytest.raises(E.InvalidManifest, match="not valid JSON"):
        open_bundle(bundles_path(tmp, bundles.assemble(section, None, manifest_bytes=empty,
                                                       flags=FLAG_MANIFEST_ZSTD)))


def test_four_bit_tensors_come_back_as_their_packed_bytes(tmp):
    raw = bytes([0x21, 0x43, 0x05])
    floats = np.arange(6, dtype=np.float32)
    manifest = dict(EMPTY, tensors=[{"name": "q", "dtype": "uint4", "shape": [5], "binding": "external"},
                                    {"name": "f", "dtype": "float32", "shape": [2, 3], "binding": "external"}])
    path = bundles_path(tmp, bundles.build(manifest, b"graph", [raw, floats.tobytes()], codec="raw"))
    with open_bundle(path) as b:
        q, f = b.tensor("q"), b.tensor("f")
    assert q.dtype == np.uint8 and q.tobytes() == raw
    assert f.dtype == np.float32 and f.shape == (2, 3) and f.tolist() == floats.reshape(2, 3).tolist()


@pytest.mark.packager
def test_a_signed_bundle_verifies_with_its_key_only(tmp, good):
    from edgepack.packager.sign import keygen, sign_bundle

    path = bundles_path(tmp, good)
    mine, other = keygen(tmp / "mine"), keygen(tmp / "other")
    sign_bundle(path, mine.private_path)
    with open_bundle(path, public_key=mine.public_path) as b:
        assert b.signed_data_digest == b.data_digest() and b.verify() == []
    with pytest.raises(E.BadSignature):
        open_bundle(path, public_key=other.public_path)


def test_an_empty_tensor_reads_as_an_empty_array(tmp):
    manifest = dict(EMPTY, tensors=[{"name": "e", "dtype": "float32", "shape": [0, 3], "binding": "external"}])
    with open_bundle(bundles_path(tmp, bundles.build(manifest, b"graph", [b""], codec="raw"))) as b:
        e = b.tensor("e")
    assert e.shape == (0, 3) and e.dtype == np.float32


def test_a_tensor_larger_than_memory_is_refused_before_allocating(tmp, good, monkeypatch):
    from edgepack.runtime import host

    with open_bundle(bundles_path(tmp, good)) as b:
        t = max(b.manifest.tensors, key=lambda t: t.raw_length)
        monkeypatch.setattr(host, "physical_memory", lambda: t.raw_length)
        assert b.tensor(t.name).nbytes == t.raw_length  # exactly the memory there is: allowed
        monkeypatch.setattr(host, "physical_memory", lambda: t.raw_length - 1)
        with pytest.raises(E.TooLargeForDevice, match=f"takes {t.raw_length} bytes"):
            b.tensor(t.name)
        monkeypatch.setattr(host, "physical_memory", lambda: None)  # unknown: not refused
        assert b.tensor(t.name).nbytes == t.raw_length


def test_close_and_the_with_block_close_the_descriptor(tmp, good):
    b = open_bundle(bundles_path(tmp, good))
    fd = b.fileno()
    b.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    with open_bundle(bundles_path(tmp, good)) as b:
        fd = b.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_failed_opens_leave_no_descriptor_open(tmp):
    bad = bundles_path(tmp, b"\x89EDGEPK\n" + bytes(10))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(E.TruncatedBundle):
            open_bundle(bad)
    assert len(os.listdir("/proc/self/fd")) == before


def test_descriptor_zero_is_closed_too(tmp, good):
    """In a process started with stdin closed, the bundle's descriptor is 0: close() must close it."""
    import subprocess
    import sys

    path = bundles_path(tmp, good)
    code = (f"import os, edgepack.runtime as rt\nos.close(0)\nb = rt.open_bundle({str(path)!r})\n"
            "assert b.fileno() == 0\nb.close()\ntry:\n    os.fstat(0)\nexcept OSError:\n    print('closed')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "closed", out.stderr


def test_a_file_holding_only_the_magic_is_truncated(tmp):
    from edgepack.runtime.format import MAGIC

    with pytest.raises(E.TruncatedBundle):
        open_bundle(bundles_path(tmp, MAGIC))
    with pytest.raises(E.BadMagic):
        open_bundle(bundles_path(tmp, MAGIC[:-1]))


def test_a_manifest_offset_inside_the_header_is_refused(tmp, good):
    from edgepack.runtime.format import HEADER, HEADER_SIZE

    magic, version, flags, _, length, signature = HEADER.unpack(good[:HEADER_SIZE])
    for offset in (0, HEADER_SIZE, DATA_START - 1):
        data = HEADER.pack(magic, version, flags, offset, length, signature) + good[HEADER_SIZE:]
        with pytest.raises(E.InvalidManifest, match=f"manifest offset {offset} lies inside the header"):
            open_bundle(bundles_path(tmp, data))


def test_a_missing_tensor_is_named_with_the_bundle(tmp, good):
    path = bundles_path(tmp, good)
    with open_bundle(path) as b, pytest.raises(E.NoSuchTensor) as caught:
        b.tensor("no such tensor")
    assert "no such tensor" in str(caught.value) and str(path) in str(caught.value)


def test_a_bundle_dropped_without_closing_gives_its_descriptor_back(tmp, good):
    """A Bundle that goes out of scope unclosed (a caller that forgot `with`) closes its file when collected:
    a long-running process that opens many bundles must not run out of descriptors."""
    import gc

    path = bundles_path(tmp, good)
    b = open_bundle(path)
    fd = b._fd
    assert os.fstat(fd).st_size == len(good)
    del b
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
