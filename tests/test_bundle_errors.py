"""Each way a bundle can be wrong gets its own typed error, named after what is wrong."""

import json

import pathlib

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle
from edgepack.runtime.format import HEADER, MAGIC, MAX_MANIFEST_BYTES

import bundles
import prebuilt


@pytest.fixture(scope="module")
def good(cases):
    case = cases[prebuilt.ERRORS_CASE]
    return pathlib.Path(case.bundle).read_bytes(), case.feeds


def write(tmp, data: bytes):
    p = tmp / "x.edgepack"
    p.write_bytes(data)
    return p


def opens(tmp, data):
    with open_bundle(write(tmp, data)) as b:
        return b


def test_good_bundle_opens(tmp, good):
    b = opens(tmp, good[0])
    assert len(b.manifest.tensors) == 6


def test_wrong_magic(tmp, good):
    with pytest.raises(E.BadMagic):
        opens(tmp, b"NOTABUNDLE" + good[0][10:])


def test_empty_file(tmp):
    with pytest.raises(E.BadMagic):
        opens(tmp, b"")


def test_unsupported_version(tmp, good):
    data = bytearray(good[0])
    data[8:12] = (99).to_bytes(4, "little")
    with pytest.raises(E.UnsupportedVersion, match="99"):
        opens(tmp, bytes(data))


def test_unknown_flags(tmp, good):
    data = bytearray(good[0])
    data[12] |= 0x80
    with pytest.raises(E.InvalidManifest, match="flags"):
        opens(tmp, bytes(data))


def test_manifest_is_stored_compressed_and_read_back(tmp, good):
    from edgepack.runtime.format import FLAG_MANIFEST_ZSTD
    flags = int.from_bytes(good[0][12:16], "little")
    assert flags & FLAG_MANIFEST_ZSTD
    _, section, manifest, _ = bundles.parts(good[0])
    plain = opens(tmp, bundles.assemble(section, manifest))   # the same manifest stored as plain JSON
    assert plain.manifest.raw == manifest


def _compressed(section, manifest_json: bytes, **kw):
    import zstandard
    from edgepack.runtime.format import FLAG_MANIFEST_ZSTD
    return bundles.assemble(section, None, flags=FLAG_MANIFEST_ZSTD,
                            manifest_bytes=zstandard.ZstdCompressor(**kw).compress(manifest_json))


def test_compressed_manifest_over_the_cap(tmp, good):
    _, section, manifest, _ = bundles.parts(good[0])
    huge = json.dumps({**manifest, "report": {"pad": " " * MAX_MANIFEST_BYTES}}).encode()
    with pytest.raises(E.ManifestTooLarge):
        opens(tmp, _compressed(section, huge))


def test_compressed_manifest_without_declared_size(tmp, good):
    _, section, manifest, _ = bundles.parts(good[0])
    data = _compressed(section, json.dumps(manifest).encode(), write_content_size=False)
    with pytest.raises(E.InvalidManifest, match="declare its size"):
        opens(tmp, data)


def test_compressed_manifest_flag_on_garbage(tmp, good):
    from edgepack.runtime.format import FLAG_MANIFEST_ZSTD
    _, section, manifest, _ = bundles.parts(good[0])
    data = bundles.assemble(section, manifest, flags=FLAG_MANIFEST_ZSTD)
    with pytest.raises(E.InvalidManifest, match="zstd"):
        opens(tmp, data)


@pytest.mark.parametrize("keep", [20, 1000, -1])
def test_truncated(tmp, good, keep):
    data = good[0][:keep]
    with pytest.raises(E.TruncatedBundle):
        opens(tmp, data)


def test_trailing_bytes(tmp, good):
    with pytest.raises(E.TrailingBytes):
        opens(tmp, good[0] + b"\0")


def test_manifest_too_large(tmp, good):
    data = bytearray(good[0])
    magic, version, flags, m_off, m_len, s_len = HEADER.unpack(data[:40])
    data[:40] = HEADER.pack(magic, version, flags, m_off, MAX_MANIFEST_BYTES + 1, s_len)
    with pytest.raises(E.ManifestTooLarge):
        opens(tmp, bytes(data))


def test_manifest_claims_data_past_the_file(tmp, good):
    def edit(m):
        m["tensors"][-1]["offset"] += 64 * 1000
    with pytest.raises(E.InvalidOffset, match=r"past the data section"):
        opens(tmp, bundles.edit_manifest(good[0], edit))


def test_data_length_disagrees_with_header(tmp, good):
    def edit(m):
        m["data_length"] += 64
    with pytest.raises(E.InvalidManifest, match="data_length"):
        opens(tmp, bundles.edit_manifest(good[0], edit))


@pytest.mark.parametrize("text, problem", [
    (b"not json", "not valid JSON"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"x": NaN}', "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_bad_json(tmp, good, text, problem):
    _, section, manifest, _ = bundles.parts(good[0])
    with pytest.raises(E.InvalidManifest, match=problem):
        opens(tmp, bundles.assemble(section, manifest, manifest_bytes=text))


@pytest.mark.parametrize("edit, error, match", [
    (lambda m: m.pop("graph"), E.InvalidManifest, "lacks graph"),
    (lambda m: m.update(extra=1), E.InvalidManifest, "unknown keys extra"),
    (lambda m: m["tensors"][0].update(codec="lz77"), E.UnknownCodec, "lz77"),
    (lambda m: m["tensors"][0].update(dtype="float128"), E.InvalidManifest, "unknown dtype"),
    (lambda m: m["tensors"][0].update(shape=[10 ** 15, 10 ** 6]), E.LimitExceeded, "size"),
    (lambda m: m["tensors"][0].update(shape=[3]), E.InvalidOffset, "does not match"),
    (lambda m: m["tensors"][0].update(offset=m["tensors"][0]["offset"] + 1), E.InvalidOffset, "multiple of 64"),
    (lambda m: m["tensors"][1].update(name=m["tensors"][0]["name"]), E.InvalidOffset, "more than one"),
    (lambda m: m["tensors"][1].update(offset=m["tensors"][0]["offset"]), E.InvalidOffset, "overlaps"),
    (lambda m: m["tensors"][0].update(offset=-64), E.InvalidManifest, "offset must be"),
    (lambda m: m["tensors"][0].update(splice=10 ** 9), E.InvalidOffset, "splice"),
    (lambda m: m["tensors"][0]["frames"][0].update(sha256="ab"), E.InvalidManifest, "SHA-256"),
    (lambda m: m["tensors"][0]["frames"][0].update(raw_length=-1), E.InvalidManifest, "raw_length"),
    (lambda m: m["tensors"][0].update(binding="remote"), E.InvalidManifest, "binding"),
    (lambda m: m.update(version=2), E.InvalidManifest, "version"),
])
def test_manifest_schema(tmp, good, edit, error, match):
    with pytest.raises(error, match=match):
        opens(tmp, bundles.edit_manifest(good[0], edit))


def test_tensor_count_limit(tmp, good, monkeypatch):
    from edgepack.runtime import manifest

    monkeypatch.setattr(manifest, "MAX_TENSORS", 5)
    with pytest.raises(E.LimitExceeded, match="tensor count is 6"):
        opens(tmp, good[0])


def test_flipped_tensor_byte_names_the_tensor(tmp, good):
    data, feeds = good
    with open_bundle(write(tmp, data)) as b:
        t = max(b.manifest.tensors, key=lambda t: t.length)
        at = b.data_start + t.offset + t.length // 2
    bad = bytearray(data)
    bad[at] ^= 0x01
    path = write(tmp, bytes(bad))
    with open_bundle(path) as b:
        problems = b.verify()
    assert len(problems) == 1 and repr(t.name) in problems[0]
    with pytest.raises(E.CorruptTensor, match=repr(t.name)):
        load(path)


def test_flipped_graph_byte_is_refused(tmp, good):
    data, _ = good
    with open_bundle(write(tmp, data)) as b:
        at = b.data_start + b.manifest.graph.offset + 20
    bad = bytearray(data)
    bad[at] ^= 0x40
    with pytest.raises(E.CorruptTensor, match="graph"):
        load(write(tmp, bytes(bad)))


def test_magic_is_defined_once():
    assert MAGIC == b"\x89EDGEPK\n"
