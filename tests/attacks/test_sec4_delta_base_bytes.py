"""Security review 4: the bound on a delta's result (at most 4 x (base + delta) + 1 MiB, finding F5 of the
second review) was computed from `base.bytes`, a figure the delta's own index declares. A delta declaring a
base of 10**15 bytes lifted it: a 4,396-byte delta of repeated copies of one base tensor made apply_delta
write a 4.28 GB file from a 14 MB base in 45 s (any size, to a full disk). apply_delta now bounds the result
by the size of the base file it opened."""

import hashlib
import json

import pytest

import bundles
import delta_edit
import graphs
from edgepack.packager import package
from edgepack.runtime import apply_delta, open_bundle, open_delta
from edgepack.runtime import delta_format as F
from edgepack.runtime.format import align


def _copies_delta(tmp_path, declared_base: int, copies: int):
    """(base path, delta path): a delta whose result copies the base's largest tensor `copies` times, its
    index declaring a base of `declared_base` bytes."""
    model, _ = graphs.mlp(hidden=(256,))
    base_path = tmp_path / "base.edgepack"
    package(model, base_path)
    _, section, manifest, _ = bundles.parts(base_path.read_bytes())
    graph, weight = manifest["graph"], max(manifest["tensors"], key=lambda t: t["length"])
    graph_bytes = section[graph["offset"]:graph["offset"] + graph["length"]]
    weight_bytes = section[weight["offset"]:weight["offset"] + weight["length"]]
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
    index = {"format": "edgepack-delta", "version": 1,
             "base": {"manifest_sha256": base_sha, "bytes": declared_base},
             "result": {"sha256": hashlib.sha256(result).hexdigest(), "bytes": len(result), "flags": 0,
                        "manifest_length": len(manifest_bytes), "signature_length": 0},
             "zstd": [{"level": 3}], "provenance": {},
             "blobs": [{"op": "copy", "base": "<graph>", "sha256": hashlib.sha256(graph_bytes).hexdigest()}]
             + [copy] * copies}
    update = tmp_path / "amp.edgedelta"
    update.write_bytes(delta_edit.assemble(index, manifest_bytes))
    return base_path, update, len(result), len(weight_bytes)


def test_a_declared_base_size_does_not_lift_the_bound_on_the_result(tmp_path):
    model_base = tmp_path / "probe"
    model_base.mkdir()
    _, _, _, weight = _copies_delta(model_base, 0, 1)
    base_size = (model_base / "base.edgepack").stat().st_size
    copies = 1 + (F.RESULT_GROWTH * 2 * base_size + F.RESULT_SLACK) // weight
    base, update, result, _ = _copies_delta(tmp_path, 10 ** 15, copies)
    assert open_delta(update).result.file_bytes == result  # the reader takes the declared size at its word
    assert update.stat().st_size * 20 < result
    with pytest.raises(F.InvalidDelta, match="more than 4 times the base"):
        apply_delta(base, update, tmp_path / "out.edgepack")
    assert not (tmp_path / "out.edgepack").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_result_within_the_bound_of_the_real_base_applies_whatever_size_is_declared(tmp_path):
    """base.bytes stays informational: a delta declaring 0 applies when the real base carries the result."""
    base, update, result, _ = _copies_delta(tmp_path, 0, 3)
    assert apply_delta(base, update, tmp_path / "out.edgepack").bytes == result
