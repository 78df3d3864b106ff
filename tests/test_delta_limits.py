"""The delta format's limits, at the limit and one past it, with the figures docs/FORMAT.md ("Deltas") gives
written out here (not read from runtime/delta_format.py, so that a changed constant fails a test), and the
messages its errors carry. Issue 19's mutation test of runtime/delta_format.py."""

import json

import pytest
import zstandard

from edgepack.packager.delta import make_delta
from edgepack.runtime import apply_delta, open_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime.delta_reader import transform_width

import delta_edit
import deltas

RANGES = {"level": (1, 19), "strategy": (1, 2), "window_log": (10, 24), "chain_log": (6, 24),
          "hash_log": (6, 24), "search_log": (1, 9), "min_match": (3, 7), "target_length": (0, 131072)}
MAX_INDEX = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(base path, bytes of a delta that retrains the last layer: a small delta, a result over 512 KiB)."""
    folder = tmp_path_factory.mktemp("delta-limits")
    paths, _ = deltas.versions(folder, hidden=(384, 384))
    return paths["v1"], open(make_delta(paths["v1"], paths["head"], folder / "head.edgedelta").path, "rb").read()


def write(folder, data: bytes, name: str):
    path = folder / name
    path.write_bytes(data)
    return path


def opened(tmp, data: bytes):
    with open_delta(write(tmp, data, "d.edgedelta")) as d:
        return d


def with_setting(setting):
    return lambda index, section: index["zstd"].append(setting)


@pytest.mark.parametrize("key", RANGES)
def test_each_zstd_setting_is_read_at_its_limits_and_refused_past_them(tmp, head, key):
    low, high = RANGES[key]
    n = len(delta_edit.parts(head[1])[0]["zstd"])
    for value in (low, high):
        assert opened(tmp, delta_edit.edit(head[1], with_setting({key: value}))).settings[n] == {key: value}
    for value in (low - 1, high + 1):
        with pytest.raises(F.InvalidDelta, match=f"zstd\\[{n}\\]\\.{key} must be an integer in \\[{low}, {high}\\]"):
            opened(tmp, delta_edit.edit(head[1], with_setting({key: value})))


@pytest.mark.parametrize("dtype, width", [("uint8", 1), ("float16", 2), ("bfloat16", 2), ("float32", 4),
                                          ("int64", 8), ("float64", 8), ("complex128", 1), ("int4", 1)])
def test_differences_are_taken_in_elements_of_1_2_4_or_8_bytes(dtype, width):
    assert transform_width(dtype) == width


def test_a_compressed_index_has_flag_1(tmp, head):
    index, section, version = delta_edit.parts(head[1])
    stored = zstandard.ZstdCompressor().compress(json.dumps(index).encode())
    assert opened(tmp, delta_edit.assemble(stored, section, version, flags=1)).settings
    with pytest.raises(F.InvalidDelta, match="header flags 0x2 include ones this runtime does not know"):
        opened(tmp, delta_edit.assemble(stored, section, version, flags=2))


def test_a_compressed_index_may_declare_64_mib_and_not_a_byte_more(tmp, head):
    index, section, version = delta_edit.parts(head[1])
    text = json.dumps(index).encode()
    padded = text[:-1] + b" " * (MAX_INDEX - len(text)) + b"}"
    compressor = zstandard.ZstdCompressor(level=1)
    assert opened(tmp, delta_edit.assemble(compressor.compress(padded), section, version, flags=1)).settings
    over = compressor.compress(padded[:-1] + b" }")
    with pytest.raises(F.InvalidDelta, match=f"the compressed index does not declare a size of at most {MAX_INDEX}"):
        opened(tmp, delta_edit.assemble(over, section, version, flags=1))


def test_a_result_may_take_the_slack_of_1_mib(tmp, head):
    """With a base of 0 bytes the bound is 4 x the delta + 1 MiB: the result needs more than half the slack."""
    index = delta_edit.parts(head[1])[0]
    assert 4 * len(head[1]) + (1 << 19) < index["result"]["bytes"] <= 4 * len(head[1]) + (1 << 20)
    assert opened(tmp, delta_edit.edit(head[1], lambda i, s: i["base"].update(bytes=0))).base_bytes == 0


def test_the_errors_say_what_is_wrong(tmp, head):
    with pytest.raises(F.BadDeltaMagic, match="not an edgepack delta \\(wrong magic bytes; expected"):
        opened(tmp, b"\x89EDGEPK\n" + bytes(100))
    with pytest.raises(F.InvalidDelta, match=": invalid delta: header flags"):
        opened(tmp, delta_edit.edit(head[1], lambda i, s: None)[:12] + b"\x04" + head[1][13:])
    base, data = head
    wrong = delta_edit.edit(data, lambda i, s: i["result"].update(sha256="0" * 64))
    with pytest.raises(F.ResultMismatch, match="the rebuilt bundle is not the one the delta names: .*nothing was "
                                               "written"):
        apply_delta(base, write(tmp, wrong, "wrong.edgedelta"), tmp / "out.edgepack")
