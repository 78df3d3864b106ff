"""Versions of one small MLP for delta tests: a base, a retrained head, a fine-tune of every layer, an int8
weight update and a reshaped layer, each packaged as a bundle (weights seeded, so runs are reproducible)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import edgepack
import graphs


def _edit(model: onnx.ModelProto, change) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        arr = change(init.name, numpy_helper.to_array(init))
        if arr is not None:
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return out


def versions(folder: Path, hidden: tuple[int, ...] = (256, 256)) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """{version: bundle path} for v1 (base), head (last layer retrained), full (every weight moved by about
    1e-3 of itself, as fine-tuning does), shape (a layer of another width: new graph and tensors)."""
    rng = np.random.default_rng(7)
    base, feeds = graphs.mlp(hidden=hidden, d_out=10)
    last = f"w{len(hidden)}", f"b{len(hidden)}"
    models = {
        "v1": base,
        "head": _edit(base, lambda n, a: (a * (1 + rng.standard_normal(a.shape).astype(np.float32) * 0.01))
                      if n in last else None),
        "full": _edit(base, lambda n, a: a * (1 + rng.standard_normal(a.shape).astype(np.float32) * 1e-3)),
        "shape": graphs.mlp(hidden=(hidden[0], hidden[1] // 2), d_out=10)[0],
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.edgepack"
        edgepack.package(model, output=paths[name])
    return paths, feeds


def copies_delta(folder: Path, declared_base: int | None = None, copies: int | None = None
                 ) -> tuple[Path, Path, int, int]:
    """(base path, delta path, result bytes, copied blob bytes): a hand-made delta whose result copies the
    base's largest tensor `copies` times (default: enough to pass the bound on a result, RESULT_GROWTH x twice
    the base + RESULT_SLACK), its index declaring a base of `declared_base` bytes (default: the real size)."""
    import bundles
    from edgepack.runtime import delta_format as F
    from edgepack.runtime.format import align

    model, _ = graphs.mlp(hidden=(256,))
    base_path = folder / "base.edgepack"
    edgepack.package(model, base_path)
    base_size = base_path.stat().st_size
    _, section, manifest, _ = bundles.parts(base_path.read_bytes())
    graph, weight = manifest["graph"], max(manifest["tensors"], key=lambda t: t["length"])
    graph_bytes = section[graph["offset"]:graph["offset"] + graph["length"]]
    weight_bytes = section[weight["offset"]:weight["offset"] + weight["length"]]
    if copies is None:
        copies = 1 + (F.RESULT_GROWTH * 2 * base_size + F.RESULT_SLACK) // len(weight_bytes)
    data, tensors = bytearray(graph_bytes), []
    for i in range(copies):
        start = align(len(data))
        data += bytes(start - len(data)) + weight_bytes
        tensors.append({**{k: v for k, v in weight.items() if k != "splice"}, "name": f"w{i}", "offset": start,
                        "binding": "external"})
    copy = {"op": "copy", "base": weight["name"], "sha256": hashlib.sha256(weight_bytes).hexdigest()}
    update, result = hand_delta(base_path, manifest, graph_bytes, data, tensors, [copy] * copies, b"",
                                folder / "amp.edgedelta", level=3,
                                base_bytes=base_size if declared_base is None else declared_base)
    return base_path, update, result, len(weight_bytes)


def hand_delta(base_path: Path, manifest: dict, graph_bytes: bytes, data: bytearray, tensors: list[dict],
               blobs: list[dict], payload: bytes, out: Path, *, level: int, base_bytes: int) -> tuple[Path, int]:
    """Write at `out` a hand-made delta from the bundle at base_path to the bundle holding `data` (the graph's
    stored bytes first, padded here) with `tensors` in its manifest: its index's blobs are the graph, copied
    from the base, then `blobs`, whose stored bytes are `payload`; it declares a base of `base_bytes` and
    zstd level `level`. Returns (out, the result's size in bytes)."""
    import bundles
    import delta_edit
    from edgepack.runtime import open_bundle
    from edgepack.runtime.format import align

    data += bytes(align(len(data)) - len(data))
    result_manifest = dict(manifest, tensors=tensors, data_length=len(data))
    manifest_bytes = json.dumps(result_manifest, separators=(",", ":")).encode()
    result = bundles.assemble(bytes(data), result_manifest)
    with open_bundle(base_path) as b:
        base_sha = hashlib.sha256(b.manifest_bytes).hexdigest()
    index = {"format": "edgepack-delta", "version": 1, "base": {"manifest_sha256": base_sha, "bytes": base_bytes},
             "result": {"sha256": hashlib.sha256(result).hexdigest(), "bytes": len(result), "flags": 0,
                        "manifest_length": len(manifest_bytes), "signature_length": 0},
             "zstd": [{"level": level}], "provenance": {},
             "blobs": [{"op": "copy", "base": "<graph>", "sha256": hashlib.sha256(graph_bytes).hexdigest()}]
             + blobs}
    out.write_bytes(delta_edit.assemble(index, manifest_bytes + payload))
    return out, len(result)
