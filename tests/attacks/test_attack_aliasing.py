"""Tensor data aliasing other data: every blob owns its bytes, in ascending order, so one stored byte can
never decode as two tensors (test_bundle_errors.py checks a plain overlap of two offsets)."""

import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import open_bundle

import bundles
from conftest import write

BLOB_KEYS = ("codec", "offset", "length", "raw_length", "sha256", "frames")


def _alias(target: dict, source: dict) -> None:
    target.update({k: source[k] for k in BLOB_KEYS})


def _same_size_pair(m):
    """Two tensors of the same dtype and shape (the MLP's two hidden biases)."""
    by_shape = {}
    for t in m["tensors"]:
        by_shape.setdefault((t["dtype"], tuple(t["shape"])), []).append(t)
    return next(pair for pair in by_shape.values() if len(pair) >= 2)[:2]


def test_a_perfect_alias_is_refused(tmp, mlp_bundle):
    """A tensor pointing at another's bytes, with that tensor's own hashes: every hash would check out."""
    data, _ = mlp_bundle

    def edit(m):
        a, b = _same_size_pair(m)
        _alias(b, a)
    with pytest.raises(E.InvalidOffset, match="overlaps"):
        open_bundle(write(tmp, bundles.edit_manifest(data, edit)))


def test_the_graph_aliasing_a_tensor_is_refused(tmp, mlp_bundle):
    data, _ = mlp_bundle
    with pytest.raises(E.InvalidOffset):
        open_bundle(write(tmp, bundles.edit_manifest(data, lambda m: _alias(m["graph"], m["tensors"][-1]))))


def test_a_tensor_listed_after_one_it_precedes_is_refused(tmp, mlp_bundle):
    """Swapping two entries keeps every byte owned once, but out of order: still refused (one order only,
    found as a gap before the first or an overlap with the second)."""
    data, _ = mlp_bundle

    def edit(m):
        m["tensors"][0], m["tensors"][1] = m["tensors"][1], m["tensors"][0]
    with pytest.raises(E.InvalidOffset, match="overlaps|gap"):
        open_bundle(write(tmp, bundles.edit_manifest(data, edit)))


def test_a_tensor_reaching_into_the_next_one_is_refused(tmp, mlp_bundle):
    """A last frame grown by 64 bytes, so that its tail is the next tensor's head (every tensor stored as
    zstd, which has no codec-specific fields to disagree first)."""
    data = bundles.build(*bundles.decoded(write(tmp, mlp_bundle[0], "src.edgepack")), codec="zstd")

    def edit(m):
        t = m["tensors"][0]
        t["frames"][-1]["length"] += 64
        t["length"] += 64
    with pytest.raises(E.InvalidOffset, match="overlaps"):
        open_bundle(write(tmp, bundles.edit_manifest(data, edit)))
