"""Versions of one small MLP for delta tests: a base, a retrained head, a fine-tune of every layer, an int8
weight update and a reshaped layer, each packaged as a bundle (weights seeded, so runs are reproducible)."""

from __future__ import annotations

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
