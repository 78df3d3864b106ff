"""Security review 4: the bound on a delta's result (at most 4 x (base + delta) + 1 MiB, finding F5 of the
second review) was computed from `base.bytes`, a figure the delta's own index declares. A delta declaring a
base of 10**15 bytes lifted it: a 4,396-byte delta of repeated copies of one base tensor made apply_delta
write a 4.28 GB file from a 14 MB base in 45 s (any size, to a full disk). apply_delta now bounds the result
by the size of the base file it opened."""

import pytest

import deltas
from edgepack.runtime import apply_delta, open_delta
from edgepack.runtime import delta_format as F


def test_a_declared_base_size_does_not_lift_the_bound_on_the_result(tmp_path):
    base, update, result, _ = deltas.copies_delta(tmp_path, declared_base=10 ** 15)
    assert open_delta(update).result.file_bytes == result  # the reader takes the declared size at its word
    assert update.stat().st_size * 20 < result
    with pytest.raises(F.InvalidDelta, match="more than 4 times the base"):
        apply_delta(base, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_result_within_the_bound_of_the_real_base_applies_whatever_size_is_declared(tmp_path):
    """base.bytes stays informational: a delta declaring 0 applies when the real base carries the result."""
    base, update, result, _ = deltas.copies_delta(tmp_path, declared_base=0, copies=3)
    assert apply_delta(base, update, tmp_path / "out.edgepack").bytes == result
