"""The delta reader at its edges (issue 19's mutation test of runtime/delta_reader.py): unknown keys in each
kind of blob op, an empty zstd setting, the provenance depth and the result growth bound at the limit and one
past it, a file holding only the magic, a delta that shrinks after opening, a path holding ': ', and the
descriptor given back on leaving `with` or on collection."""

import gc
import os

import pytest

from edgepack.packager.delta import make_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime import delta_reader
from edgepack.runtime.delta_reader import open_delta

import delta_edit
import deltas


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(delta bytes, delta path): v1 -> head of tests/deltas.py (copy, diff and literal ops)."""
    folder = tmp_path_factory.mktemp("reader")
    paths, _ = deltas.versions(folder, hidden=(64, 64))
    path = make_delta(paths["v1"], paths["head"], folder / "u.edgedelta").path
    return open(path, "rb").read(), path


def _written(tmp_path, data, name="d.edgedelta"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _edited(tmp_path, made, change):
    return _written(tmp_path, delta_edit.edit(made[0], change))


def _op(index, kind):
    return next(b for b in index["blobs"] if b["op"] == kind)


@pytest.mark.parametrize("kind", ["copy", "diff", "literal"])
def test_an_unknown_key_in_a_blob_op_is_refused(tmp_path, made, kind):
    path = _edited(tmp_path, made, lambda index, _: _op(index, kind).update(extra=1))
    with pytest.raises(F.InvalidDelta, match="extra"):
        open_delta(path)


def test_an_empty_zstd_setting_is_refused(tmp_path, made):
    def change(index, _):
        index["zstd"][0] = {}

    with pytest.raises(F.InvalidDelta, match=r"zstd\[0\] is empty"):
        open_delta(_edited(tmp_path, made, change))


def _nested(depth):
    value: dict = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def test_provenance_may_nest_to_the_limit_and_no_deeper(tmp_path, made):
    limit = delta_reader._FREE_FORM_DEPTH
    with open_delta(_edited(tmp_path, made, lambda index, _: index.update(provenance=_nested(limit)))):
        pass
    deeper = _edited(tmp_path, made, lambda index, _: index.update(provenance=_nested(limit + 1)))
    with pytest.raises(F.InvalidDelta, match=f"provenance must be an object nesting at most {limit} levels"):
        open_delta(deeper)


def test_the_result_growth_bound_admits_exactly_the_bound(made, monkeypatch):
    _, path = made
    with open_delta(path) as d:
        result = d.result.file_bytes
    monkeypatch.setattr(delta_reader, "RESULT_GROWTH", 0)
    monkeypatch.setattr(delta_reader, "RESULT_SLACK", result)
    with open_delta(path):
        pass
    monkeypatch.setattr(delta_reader, "RESULT_SLACK", result - 1)
    with pytest.raises(F.InvalidDelta, match=f"the result would be {result} bytes"):
        open_delta(path)


def test_a_file_holding_only_the_magic_is_truncated_not_foreign(tmp_path):
    with pytest.raises(F.TruncatedDelta, match=f"declares {F.DELTA_DATA_START} bytes but the file has "
                                               f"{len(F.DELTA_MAGIC)}"):
        open_delta(_written(tmp_path, F.DELTA_MAGIC))
    with pytest.raises(F.BadDeltaMagic):
        open_delta(_written(tmp_path, F.DELTA_MAGIC[:-1]))


def test_a_delta_that_shrinks_after_opening_is_truncated(tmp_path, made):
    path = _written(tmp_path, made[0])
    with open_delta(path) as d:
        op = next(op for op in d.ops if op.op == F.OP_LITERAL)
        os.truncate(path, F.DELTA_DATA_START + op.offset)
        with pytest.raises(F.TruncatedDelta, match=f"declares {F.DELTA_DATA_START + op.offset + op.result.length} "
                                                   f"bytes but the file has {F.DELTA_DATA_START + op.offset}"):
            d.read(op.offset, op.result.length)


def test_a_directory_whose_path_holds_a_colon_is_named_whole(tmp_path):
    folder = tmp_path / "a: b"
    folder.mkdir()
    with pytest.raises(F.InvalidDelta) as e:
        open_delta(folder)
    assert str(e.value) == (f"{folder}: invalid delta: it is a directory, not a delta file; give the path of a "
                            "regular .edgedelta file")


def test_the_descriptor_is_given_back_on_leaving_with_and_on_collection(made):
    _, path = made
    with open_delta(path) as d:
        fd = d._fd
        os.fstat(fd)
    with pytest.raises(OSError):
        os.fstat(fd)
    d = open_delta(path)
    fd = d._fd
    del d
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
