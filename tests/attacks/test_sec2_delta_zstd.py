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
    import hashlib
    import json

    import bundles
    import graphs
    from edgepack.packager import package
    from edgepack.runtime import open_bundle
    from edgepack.runtime.format import align

    model, _ = graphs.mlp(hidden=(256,))
    base_path = tmp_path / "base.edgepack"
    package(model, base_path)
    base = base_path.read_bytes()
    _, section, manifest, _ = bundles.parts(base)
    graph, weight = manifest["graph"], max(manifest["tensors"], key=lambda t: t["length"])
    graph_bytes = section[graph["offset"]:graph["offset"] + graph["length"]]
    weight_bytes = section[weight["offset"]:weight["offset"] + weight["length"]]
    copies = 1 + (F.RESULT_GROWTH * 2 * len(base) + F.RESULT_SLACK) // len(weight_bytes)
    data, tensors = bytearray(graph_bytes), []
    for i in range(copies):
        start = align(len(data))
        data += bytes(start - len(data)) + weight_bytes
        tensors.append({**{k: v for k, v in weight.items() if k != "splice"}, "name": f"w{i}", "offset": start,
                        "binding": "external"})
    data += bytes(align(len(data)) - len(data))
    result_manifest = dict(manifest, tensors=tensors, data_length=len(data))
    manifest_bytes = json.dumps(result_manifest, separators=(",", ":")).encode()
    result = bundles.assemble(bytes(data), result_manifest)
    with open_bundle(base_path) as b:
        base_sha = hashlib.sha256(b.manifest_bytes).hexdigest()
    copy = {"op": "copy", "base": weight["name"], "sha256": hashlib.sha256(weight_bytes).hexdigest()}
    index = {"format": "edgepack-delta", "version": 1, "base": {"manifest_sha256": base_sha, "bytes": len(base)},
             "result": {"sha256": hashlib.sha256(result).hexdigest(), "bytes": len(result), "flags": 0,
                        "manifest_length": len(manifest_bytes), "signature_length": 0},
             "zstd": [{"level": 3}], "provenance": {},
             "blobs": [{"op": "copy", "base": "<graph>", "sha256": hashlib.sha256(graph_bytes).hexdigest()}]
             + [copy] * copies}
    update = tmp_path / "amp.edgedelta"
    update.write_bytes(delta_edit.assemble(index, manifest_bytes))
    assert update.stat().st_size * 20 < len(result)
    with pytest.raises(F.InvalidDelta, match="more than 4 times"):
        apply_delta(base_path, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()
