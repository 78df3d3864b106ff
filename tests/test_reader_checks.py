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
