"""Fourth security review, second round: a bundle's recorded target with integers past float range.

The profile schema took any non-negative JSON integer, and JSON integers are unbounded: memory.ram_mb of 10**400
made load() (so `edgepack run`) fail with OverflowError in the RAM comparison, and memory.budget_mb of 10**400
made `edgepack measure` fail so in its budget share (exit 3, "internal error"). Every integer a profile holds
is now at most 2**53, checked with the other types."""

import pytest
from bundles import edit_manifest
from conftest import write

from edgepack.runtime import load
from edgepack.runtime.errors import TargetError
from edgepack.runtime.measure import measure
from edgepack.runtime.profile import profile_from_dict


@pytest.mark.parametrize("section,key", [("memory", "ram_mb"), ("memory", "budget_mb"), ("memory", "storage_mb"),
                                         ("device", "cores"), ("codec", "mapped_min_bytes")])
def test_a_recorded_integer_past_float_range_is_a_target_error(tmp_path, mlp_bundle, section, key):
    data, feeds = mlp_bundle
    path = write(tmp_path, edit_manifest(data, lambda m: m["target"][section].update({key: 10 ** 400})))
    with pytest.raises(TargetError, match=f"{section}.{key} must be a non-negative integer of at most 2"):
        load(path).run(feeds)


def test_measure_with_a_huge_recorded_budget_is_a_target_error(tmp_path, mlp_bundle):
    data, _ = mlp_bundle
    path = write(tmp_path, edit_manifest(data, lambda m: m["target"]["memory"].update(budget_mb=10 ** 400)))
    with pytest.raises(TargetError, match="budget_mb"):
        measure(path, runs=1)


def test_large_but_sane_integers_still_load():
    profile = profile_from_dict({"name": "big", "memory": {"ram_mb": 1 << 40, "budget_mb": 1 << 40}})
    assert profile.memory.ram_mb == 1 << 40
