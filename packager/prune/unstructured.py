"""--prune unstructured:RATIO: the smallest weights become zeros; shapes stay.

Nothing gets faster (dense kernels multiply zeros too), but runs of zeros cost the lossless coder almost
nothing, so the bundle shrinks. The weights considered are the constant weights of Conv, ConvTranspose,
Gemm and MatMul (2-D and up); biases and normalisation parameters stay. Scores: |w| (l1 and l2 agree on
one weight), or with `activation` |w| times the mean magnitude of the input it multiplies (as in Wanda).
Scope `layer` zeroes `ratio` of each weight; `global` zeroes the lowest `ratio` of all scores together.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import GraphView
from .options import PruneOptions
from .probe import channel_means

_INPUT_AXIS = {"Conv": 1, "ConvTranspose": 0}  # weight axis that meets the input's channels


def _weights(view: GraphView) -> dict[str, tuple[onnx.NodeProto, int]]:
    """{weight name: (first layer reading it, the weight axis meeting the input features)}."""
    found: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in view.nodes():
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or node.domain not in ("", "ai.onnx"):
            continue
        w = view.const(node.input[1])
        if w is None or w.ndim < 2 or w.dtype.kind != "f":
            continue
        if node.op_type == "Gemm":
            axis = 1 if any(a.name == "transB" and a.i for a in node.attribute) else 0
        else:
            axis = _INPUT_AXIS.get(node.op_type, 0)
        found.setdefault(node.input[1], (node, axis))
    return found


def _scores(view: GraphView, weights, criterion: str, samples) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for name in weights:
        w = view.const(name)
        assert w is not None  # _weights keeps only constant weights
        values[name] = np.abs(w.astype(np.float64))
    if criterion != "activation":
        return values
    tracks = {}
    for node, _ in weights.values():
        rank = view.rank(node.input[0])
        if rank is None or node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute):
            continue
        tracks[node.input[0]] = (1 if node.op_type in _INPUT_AXIS else rank - 1, rank)
    means = channel_means(view.model, tracks, samples)
    for name, (node, axis) in weights.items():
        m = means.get(node.input[0])
        if m is not None and len(m) == values[name].shape[axis]:
            shape = [1] * values[name].ndim
            shape[axis] = len(m)
            values[name] = values[name] * m.reshape(shape)
    return values


def magnitude_prune(model: onnx.ModelProto, options: PruneOptions,
                    samples: Sequence[dict[str, np.ndarray]] | None) -> tuple[onnx.ModelProto, list[dict[str, Any]]]:
    view = GraphView(model)
    weights = _weights(view)
    scores = _scores(view, weights, options.criterion, samples)
    if options.scope == "global" and scores:
        every = np.concatenate([s.ravel() for s in scores.values()])
        k = int(options.ratio * every.size)
        threshold = np.partition(every, k)[k] if k < every.size else np.inf
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}
    layers = []
    for name, s in scores.items():
        const = view.const(name)
        assert const is not None  # scores are only made for the constant weights _weights found
        w = const.copy()
        if options.scope == "layer":
            k = int(options.ratio * s.size)
            zero: np.ndarray = np.zeros(s.size, bool)
            zero[np.argsort(s, axis=None, kind="stable")[:k]] = True
            zero = zero.reshape(s.shape)
        else:
            zero = s < threshold
        w[zero] = 0
        inits[name].CopyFrom(numpy_helper.from_array(w, name))
        layers.append({"name": weights[name][0].name, "weight": name, "zeros": int((w == 0).sum()),
                       "params": int(w.size)})
    return out, layers


def count_zeros(model: onnx.ModelProto) -> int:
    """Zero elements over the floating-point initializers."""
    total = 0
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            total += int((numpy_helper.to_array(t) == 0).sum())
    return total
