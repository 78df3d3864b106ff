"""Security review 4: every `diff` op decodes its whole base tensor again and rebuilds, hashes and re-encodes
a result tensor as large, while its result may store a few hundred bytes (a frame of zeros) and the op cost
the delta about 550 bytes. The bound on the result's stored bytes does not see that work: a 55.6 KB delta of
100 diffs against one 16 MiB base tensor took 24.4 s to apply (a 0.5 MB delta, minutes). apply_delta now
refuses, before writing, a delta whose diffs together rebuild more than RESULT_GROWTH times the base's
decoded bytes (+ RESULT_SLACK): a real delta diffs each base tensor about once."""

import hashlib

import pytest
import zstandard

import bundles
import deltas
import graphs
from edgepack.packager import package
from edgepack.runtime import apply_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime.format import align


def _diffs_delta(tmp_path, copies: int):
    """(base, delta): a delta whose result holds `copies` tensors, each a diff against the base's largest
    tensor with transform `none` and a difference of zeros (so each stores one small zstd frame)."""
    base_path = tmp_path / "base.edgepack"
    package(graphs.mlp(hidden=(256,))[0], base_path)
    _, section, manifest, _ = bundles.parts(base_path.read_bytes())
    graph, weight = manifest["graph"], max(manifest["tensors"], key=lambda t: t["raw_length"])
    graph_bytes = section[graph["offset"]:graph["offset"] + graph["length"]]
    zeros = bytes(weight["raw_length"])
    stored = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=False).compress(zeros)
    sha = hashlib.sha256(zeros).hexdigest()
    data, tensors = bytearray(graph_bytes), []
    for i in range(copies):
        start = align(len(data))
        data += bytes(start - len(data)) + stored
        tensors.append({"name": f"z{i}", "dtype": weight["dtype"], "shape": weight["shape"], "binding": "external",
                        "codec": "zstd", "offset": start, "length": len(stored), "raw_length": len(zeros),
                        "sha256": sha, "frames": [{"length": len(stored), "raw_length": len(zeros), "sha256": sha}]})
    diff = {"op": "diff", "base": weight["name"], "transform": "none",
            "frames": [{"codec": "zstd", "length": len(stored), "parts": [{"zstd": 0}]}]}
    update, _ = deltas.hand_delta(base_path, manifest, graph_bytes, data, tensors, [diff] * copies, stored * copies,
                                  tmp_path / "diffs.edgedelta", level=1, base_bytes=0)
    raw = sum(t["raw_length"] for t in manifest["tensors"]) + graph["raw_length"]
    return base_path, update, len(zeros), raw


def test_diffs_rebuilding_far_more_than_the_base_are_refused_before_writing(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    _, _, tensor, raw = _diffs_delta(probe, 1)
    copies = 1 + (F.RESULT_GROWTH * raw + F.RESULT_SLACK) // tensor
    base, update, _, _ = _diffs_delta(tmp_path, copies)
    assert update.stat().st_size < 1000 * copies
    with pytest.raises(F.InvalidDelta, match="diffs rebuild .* more than 4 times the base.s decoded bytes"):
        apply_delta(base, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()


def test_diffs_within_the_bound_apply(tmp_path):
    base, update, _, _ = _diffs_delta(tmp_path, 3)
    assert apply_delta(base, update, tmp_path / "out.edgepack").changed == 3
