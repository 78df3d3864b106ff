"""The delta reader's checks, each pinned by its message (issue 19's mutation test of runtime/delta_reader.py):
a resealed index that breaks one rule is refused for that rule, and one at a limit is read. Each test fails
on a mutant of the reader that scripts/mutation made and the type-only checks of test_attack_delta.py let
survive."""

import json
import os

import pytest
import zstandard

from edgepack.packager.delta import make_delta
from edgepack.runtime import open_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime.delta_format import MAX_ZSTD_SETTINGS, RESULT_GROWTH, RESULT_SLACK
from edgepack.runtime.delta_reader import zstd_parts
from edgepack.runtime.format import FLAG_MANIFEST_ZSTD, Codec
from edgepack.runtime.manifest import Frame

import delta_edit
import deltas
from conftest import write


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The bytes of a delta that moves every weight a little (every tensor diffed, the graph copied)."""
    folder = tmp_path_factory.mktemp("delta-reader")
    paths, _ = deltas.versions(folder, hidden=(384, 384))  # a delta over 256 KiB: 4 x its size passes 1 MiB
    return open(make_delta(paths["v1"], paths["full"], folder / "full.edgedelta").path, "rb").read()


def opened(tmp, data: bytes):
    with open_delta(write(tmp, data, "d.edgedelta")) as d:
        return d


def edited(tmp, full: bytes, change):
    return opened(tmp, delta_edit.edit(full, change))


def _first_part(index):
    """(blob, frame) indices of the first diff frame with a zstd part."""
    return next((b, f) for b, blob in enumerate(index["blobs"]) if blob["op"] == "diff"
                for f, frame in enumerate(blob["frames"]) if frame["parts"])


def _set_part(value, extra: bytes = b""):
    def change(index, section):
        b, f = _first_part(index)
        index["blobs"][b]["frames"][f]["parts"][0] = value
        section.extend(extra)
    return change


def test_zstd_parts_counts_the_zstd_coded_parts_of_a_frame():
    frame = Frame(10, 12, "0" * 64, {"planes": [["raw", 4], ["zstd", 3], ["zstd", 3]], "rotate": 0})
    assert [zstd_parts(frame, c) for c in (Codec.RAW, Codec.ZSTD, Codec.PLANES)] == [0, 1, 2]


def test_data_the_index_does_not_use_is_refused(tmp, full):
    with pytest.raises(F.CorruptDelta, match="the index uses [0-9]+ bytes of data but the delta has"):
        edited(tmp, full, lambda i, s: s.extend(bytes(64)))


def test_a_payload_past_the_data_section_is_refused_where_it_ends(tmp, full):
    def change(index, section):
        index["result"]["manifest_length"] = len(section) + 1
    with pytest.raises(F.CorruptDelta, match="the result's manifest ends at byte [0-9]+ of a [0-9]+-byte data"):
        edited(tmp, full, change)


@pytest.mark.parametrize("length, problem", [(0, "manifest_length must be an integer in \\[1, "),
                                             (1, "the compressed manifest is not a zstd frame")])
def test_the_result_manifest_is_at_least_one_byte(tmp, full, length, problem):
    with pytest.raises(F.InvalidDelta, match=problem):
        edited(tmp, full, lambda i, s: i["result"].update(manifest_length=length))


def test_a_copy_op_has_exactly_its_keys(tmp, full):
    def change(index, section):
        index["blobs"][0].update(extra=1)
    with pytest.raises(F.InvalidDelta, match=r"blobs\[0\] \('<graph>'\) has unknown keys extra"):
        edited(tmp, full, change)


def test_a_literal_part_of_one_byte_is_read(tmp, full):
    d = edited(tmp, full, _set_part({"literal": 1}, b"\x00"))
    parts = [p for op in d.ops for f in op.frames for p in f.parts if p.setting is None]
    assert [p.length for p in parts] == [1]
    with pytest.raises(F.InvalidDelta, match="literal must be an integer in \\[1, "):
        edited(tmp, full, _set_part({"literal": 0}))


def test_a_part_is_a_zstd_setting_or_a_literal(tmp, full):
    with pytest.raises(F.InvalidDelta, match='must be {"zstd": setting} or {"literal": length}'):
        edited(tmp, full, _set_part({"bogus": 1}))


def test_a_part_names_one_of_the_settings(tmp, full):
    index, _, _ = delta_edit.parts(full)
    last = len(index["zstd"]) - 1
    d = edited(tmp, full, _set_part({"zstd": last}))
    assert last in {p.setting for op in d.ops for f in op.frames for p in f.parts}
    with pytest.raises(F.InvalidDelta, match=f"zstd must be an integer in \\[0, {last}\\]"):
        edited(tmp, full, _set_part({"zstd": last + 1}))


def test_the_settings_may_number_up_to_the_limit(tmp, full):
    d = edited(tmp, full, lambda i, s: i.update(zstd=(i["zstd"] * MAX_ZSTD_SETTINGS)[:MAX_ZSTD_SETTINGS]))
    assert len(d.settings) == MAX_ZSTD_SETTINGS


def test_the_result_may_grow_to_the_bound_from_the_base_and_the_delta(tmp, full):
    """The bound is 4 x (base + delta) + 1 MiB: with a base of 0 bytes, the delta's own size carries a result
    that 1 MiB alone, or 4 x (base - delta) + 1 MiB, would not."""
    index, _, _ = delta_edit.parts(full)
    result = index["result"]["bytes"]
    assert RESULT_SLACK - RESULT_GROWTH * len(full) < result <= RESULT_SLACK + RESULT_GROWTH * len(full)
    d = edited(tmp, full, lambda i, s: i["base"].update(bytes=0))
    assert d.base_bytes == 0 and d.result.file_bytes == result


def test_close_releases_the_file_once(tmp, full):
    path = write(tmp, full, "d.edgedelta")
    before = len(os.listdir("/proc/self/fd"))
    d = open_delta(path)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    d.close()
    assert len(os.listdir("/proc/self/fd")) == before
    d.close()  # a second close does nothing


def test_a_result_frame_of_part_elements_is_not_diffed(tmp, full):
    """A float32 tensor of the result whose first frame holds 2 bytes, half an element: its differences
    cannot be taken element-wise, so the delta that diffs it is refused (the packager never cuts frames so;
    a hostile result manifest, stored in the delta, may)."""
    def change(index, section):
        n, flags = index["result"]["manifest_length"], index["result"]["flags"]
        stored = bytes(section[:n])
        manifest = json.loads(zstandard.ZstdDecompressor().decompress(stored) if flags & FLAG_MANIFEST_ZSTD
                              else stored)
        k = next(k for k, t in enumerate(manifest["tensors"]) if t["dtype"] == "float32"
                 and index["blobs"][k + 1]["op"] == "diff")
        tensor = manifest["tensors"][k]
        tensor["codec"] = "zstd"
        rest = {"length": tensor["length"] - 1, "raw_length": tensor["raw_length"] - 2, "sha256": "1" * 64}
        tensor["frames"] = [{"length": 1, "raw_length": 2, "sha256": "0" * 64}, rest]
        text = json.dumps(manifest, separators=(",", ":")).encode()
        text = zstandard.ZstdCompressor().compress(text) if flags & FLAG_MANIFEST_ZSTD else text
        section[:n] = text
        index["result"].update(manifest_length=len(text), bytes=index["result"]["bytes"] + len(text) - n)
        index["blobs"][k + 1]["frames"] = [{"codec": "raw", "length": 2, "parts": [{"zstd": 0}]},
                                           {"codec": "raw", "length": tensor["raw_length"] - 2, "parts": [{"zstd": 0}]}]
    with pytest.raises(F.InvalidDelta, match=r"frames\[0\]: the result frame does not hold whole 4-byte elements"):
        edited(tmp, full, change)
