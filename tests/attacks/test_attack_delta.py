"""Hostile deltas: each breaks one rule of docs/FORMAT.md's "Deltas" behind a valid header hash, and each is
refused with a DeltaError (or the bundle error it names) before memory it asks for is touched, with no
output written and the base untouched."""

import hashlib
import os

import pytest
import zstandard

from edgepack.packager.delta import make_delta
from edgepack.runtime import apply_delta, open_delta
from edgepack.runtime import delta_format as F

import delta_edit
import deltas
from conftest import peak_mb_refusing, write


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(base path, full fine-tune delta bytes, head delta bytes)."""
    folder = tmp_path_factory.mktemp("delta-attack")
    paths, _ = deltas.versions(folder, hidden=(64, 64))
    full = make_delta(paths["v1"], paths["full"], folder / "full.edgedelta").path
    head = make_delta(paths["v1"], paths["head"], folder / "head.edgedelta").path
    return paths["v1"], open(full, "rb").read(), open(head, "rb").read()


def refused(tmp, base, data, error=F.DeltaError):
    before = hashlib.sha256(open(base, "rb").read()).hexdigest()
    update = write(tmp, data, "attack.edgedelta")
    out = tmp / "out.edgepack"
    with pytest.raises(error) as info:
        apply_delta(base, update, out)
    assert not out.exists() and not [f for f in os.listdir(tmp) if f.endswith(".tmp")]
    assert hashlib.sha256(open(base, "rb").read()).hexdigest() == before
    return str(info.value)


def first_diff(index):
    return next(i for i, b in enumerate(index["blobs"]) if b["op"] == "diff")


def _set(path, value):
    def change(index, section):
        target = index
        for key in path[:-1]:
            target = target[key] if not callable(key) else target[key(index)]
        target[path[-1]] = value
    return change


EDITS = {
    "unknown key": (lambda i, s: i.update(extra=1), F.InvalidDelta),
    "format name": (_set(["format"], "edgepack"), F.InvalidDelta),
    "index version": (_set(["version"], 2), F.InvalidDelta),
    "base hash not hex": (_set(["base", "manifest_sha256"], "z" * 64), F.InvalidDelta),
    "result bytes": (lambda i, s: i["result"].update(bytes=i["result"]["bytes"] + 1), F.InvalidDelta),
    "result flags": (_set(["result", "flags"], 4), F.InvalidDelta),
    "manifest length huge": (_set(["result", "manifest_length"], 2 ** 40), F.InvalidDelta),
    "manifest length past data": (lambda i, s: i["result"].update(manifest_length=len(s) + 1), F.CorruptDelta),
    "signature length odd": (_set(["result", "signature_length"], 7), F.DeltaError),
    "blob count": (lambda i, s: i["blobs"].pop(), F.InvalidDelta),
    "unknown op": (lambda i, s: i["blobs"][0].update(op="move"), F.InvalidDelta),
    "copy of a missing blob": (lambda i, s: i["blobs"][0].update(base="nope"), F.InvalidDelta),
    "copy of another size": (lambda i, s: i["blobs"][0].update(base=i["blobs"][first_diff(i)]["base"]),
                             F.InvalidDelta),
    "diff of the graph": (lambda i, s: i["blobs"].__setitem__(0, {**i["blobs"][first_diff(i)]}), F.InvalidDelta),
    "unknown transform": (lambda i, s: i["blobs"][first_diff(i)].update(transform="rot13"), F.InvalidDelta),
    "frame count": (lambda i, s: i["blobs"][first_diff(i)]["frames"].append({}), F.InvalidDelta),
    "frame length huge": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0].update(length=2 ** 60),
                          F.DeltaError),
    # found by tests/fuzz/delta_run.py (seed 7, case 1745): a codec that is a list is not a dict key
    "frame codec a list": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0].update(codec=[1]), F.InvalidDelta),
    "frame codec": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0].update(codec="lzma"), F.InvalidDelta),
    "planes of width 3": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0].update(
        planes=[["raw", 1]] * 3), F.InvalidDelta),
    "part count": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0]["parts"].append({"zstd": 0}),
                   F.InvalidDelta),
    "part setting out of range": (lambda i, s: i["blobs"][first_diff(i)]["frames"][0]["parts"].__setitem__(
        0, {"zstd": 99}), F.InvalidDelta),
    "zstd level out of range": (lambda i, s: i["zstd"].__setitem__(0, {"level": 22}), F.InvalidDelta),
    "zstd window too large": (lambda i, s: i["zstd"].__setitem__(0, {"window_log": 31}), F.InvalidDelta),
    "zstd unknown parameter": (lambda i, s: i["zstd"].__setitem__(0, {"threads": 8}), F.InvalidDelta),
    "too many settings": (lambda i, s: i.update(zstd=[{"level": 3}] * 17), F.InvalidDelta),
    "deep provenance": (lambda i, s: i.update(provenance={"a": [[[[[[[[[[1]]]]]]]]]]}), F.InvalidDelta),
    "result sha": (_set(["result", "sha256"], "0" * 64), F.ResultMismatch),
    "copy sha": (lambda i, s: i["blobs"][0].update(sha256="0" * 64), F.DeltaError),
    "wrong base": (_set(["base", "manifest_sha256"], "0" * 64), F.WrongBase),
    "difference flipped": (lambda i, s: s.__setitem__(-len(s) // 3, s[-len(s) // 3] ^ 1), F.CorruptDelta),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_resealed_index_edits_are_refused(tmp, pair, name):
    base, full, _ = pair
    change, error = EDITS[name]
    refused(tmp, base, delta_edit.edit(full, change), error)


def test_the_header_is_checked_before_the_index(tmp, pair):
    base, full, _ = pair
    index, section, _ = delta_edit.parts(full)
    text = delta_edit.assemble(index, section)[F.DELTA_DATA_START + len(section):]
    assert "index" in refused(tmp, base, delta_edit.assemble(index, section)[:-1] + b" ", F.CorruptDelta)
    refused(tmp, base, delta_edit.assemble(text, section, version=9), F.UnsupportedDeltaVersion)
    refused(tmp, base, delta_edit.assemble(text, section, flags=2), F.InvalidDelta)
    refused(tmp, base, full[:40], F.TruncatedDelta)
    refused(tmp, base, b"\x89EDGEPK\n" + full[8:], F.BadDeltaMagic)
    refused(tmp, base, delta_edit.assemble(b"[" * 100000 + b"]" * 100000, section), F.DeltaError)
    refused(tmp, base, delta_edit.assemble(b'{"format": NaN}', section), F.DeltaError)


def test_an_index_declaring_a_gigabyte_is_refused_unread(tmp, pair):
    base, _, _ = pair
    header = F.DELTA_HEADER.pack(F.DELTA_MAGIC, 1, 0, 64, 2 ** 25, bytes(32))
    refused(tmp, base, header + bytes(100), F.TruncatedDelta)
    huge = F.DELTA_HEADER.pack(F.DELTA_MAGIC, 1, 0, 64, 2 ** 40, bytes(32))
    assert "limit" in refused(tmp, base, huge, F.InvalidDelta)


def test_a_compressed_index_that_lies_about_its_size_is_refused(tmp, pair):
    base, full, _ = pair
    _, section, _ = delta_edit.parts(full)
    bomb = zstandard.ZstdCompressor(level=3).compress(bytes(2 ** 27))  # 128 MiB of zeros, declared
    refused(tmp, base, delta_edit.assemble(bomb, section, flags=F.DELTA_FLAG_INDEX_ZSTD), F.InvalidDelta)


def test_a_difference_bomb_costs_a_frame(tmp, pair):
    """A diff frame whose zstd stream declares or holds 16 MiB more than the frame is refused, and the
    process stays near its baseline."""
    base, full, _ = pair

    def bomb(index, section):
        i = first_diff(index)
        frame = index["blobs"][i]["frames"][0]
        frame.clear()
        frame.update(codec="zstd", length=len(BOMB), parts=[])
    BOMB = zstandard.ZstdCompressor(level=3).compress(bytes(16 * 2 ** 20))
    data = delta_edit.edit(full, bomb)
    refused(tmp, base, data, F.DeltaError)
    path = write(tmp, data, "bomb.edgedelta")
    mb = peak_mb_refusing(f"rt.apply_delta({str(base)!r}, {str(path)!r}, {str(tmp / 'o.edgepack')!r})", "DeltaError")
    assert mb < 150, mb


def test_open_delta_reads_only_the_index(pair, tmp):
    _, full, _ = pair
    with open_delta(write(tmp, full, "d.edgedelta")) as d:
        assert d.ops and d.result.manifest.tensors and d.base_sha256
