"""Finding F4 of the second security review: a delta's zstd settings were trusted up to strategy 9 with
window, chain and search logs of 24, making the device re-encode with a search far slower than anything the
packager asks for. Explicit parameters are now bounded to the fast strategies (docs/FORMAT.md, Deltas)."""

import pytest
from edgepack.packager.delta import make_delta
from edgepack.runtime import apply_delta
from edgepack.runtime import delta_format as F

import delta_edit
import deltas


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("delta-zstd")
    paths, _ = deltas.versions(folder, hidden=(64, 64))
    return paths["v1"], open(make_delta(paths["v1"], paths["full"], folder / "full.edgedelta").path, "rb").read()


@pytest.mark.parametrize("setting", [
    {"strategy": 9, "window_log": 24, "chain_log": 24, "search_log": 24, "min_match": 3},
    {"strategy": 7}, {"search_log": 24}])
def test_a_slow_zstd_search_is_refused(tmp_path, pair, setting):
    base, full = pair
    hostile = delta_edit.edit(full, lambda index, section: index["zstd"].__setitem__(0, setting))
    update = tmp_path / "bomb.edgedelta"
    update.write_bytes(hostile)
    with pytest.raises(F.InvalidDelta, match="zstd"):
        apply_delta(base, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()


def test_the_packagers_own_settings_are_within_the_bounds(pair):
    _, full = pair
    index, _, _ = delta_edit.parts(full)
    for setting in index["zstd"]:
        for key, value in setting.items():
            low, high = F.ZSTD_LEVEL_RANGE if key == "level" else F.ZSTD_PARAM_RANGES[key]
            assert low <= value <= high, (key, value)


def test_a_small_delta_writing_a_huge_result_is_refused(tmp_path):
    """Finding F5: a delta of copies of one base blob, many times over, made apply write a file far larger
    than the base and the delta together."""
    import deltas

    base_path, update, result, _ = deltas.copies_delta(tmp_path)
    assert update.stat().st_size * 20 < result
    with pytest.raises(F.InvalidDelta, match="more than 4 times"):
        apply_delta(base_path, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()
