"""Parameters and FLOPs, per weighted layer and in total, for the pruning report.

FLOPs count 2 per multiply-add of Conv, ConvTranspose, Gemm and MatMul with a constant weight, and of the
GRU, LSTM and RNN input and recurrent weights (every time step; the gates' elementwise work is not counted),
for one sample: each convolution counts every output position, each recurrent layer every step, with
dynamic dimensions (height, width, sequence length) taken from the calibration data or --shape when given,
else as 1; the batch counts as 1. Total parameters count every
floating-point weight element: initializers, and the values of Constant nodes (as Paddle and TensorFlow
exporters store weights).
"""

from __future__ import annotations

from math import prod
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx

from ..dims import with_shapes
from .graph import GraphView

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
RECURRENT = ("GRU", "LSTM", "RNN")   # inputs X, W, R, B: per step, W and R each multiply once


def _dim(d) -> int:
    return d if isinstance(d, int) and d > 0 else 1


def _sized(shape: list | None) -> bool:
    """Whether the spatial dimensions of an NCHW-like shape are known sizes."""
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape[2:])


def _steps(node: onnx.NodeProto, view: GraphView) -> int | None:
    """A recurrent layer's sequence length (None: not known)."""
    x = view.shape(node.input[0])
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    d = x[1 if layout else 0] if x and len(x) == 3 else None
    return d if isinstance(d, int) and d > 0 else None


def _recurrent(node: onnx.NodeProto, view: GraphView) -> dict[str, Any] | None:
    """The cost of a GRU, LSTM or RNN whose W and R are constants."""
    w, r = view.const(node.input[1]), view.const(node.input[2]) if len(node.input) > 2 else None
    if w is None or r is None:
        return None
    bias = view.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = _steps(node, view)
    return {"op": node.op_type, "weight": node.input[1], "shape": list(w.shape),
            "params": int(w.size + r.size + (bias.size if bias is not None else 0)),
            "flops": 2 * (steps or 1) * int(w.size + r.size), "sized": steps is not None}


def _flops(node: onnx.NodeProto, view: GraphView, w: np.ndarray) -> int:
    if node.op_type == "Conv":
        out = view.shape(node.output[0])
        spatial = prod(_dim(d) for d in out[2:]) if out else 1
        return 2 * spatial * w.size
    if node.op_type == "ConvTranspose":
        x = view.shape(node.input[0])
        return 2 * (prod(_dim(d) for d in x[2:]) if x else 1) * w.size
    x = view.shape(node.input[0])
    if node.op_type == "Gemm":
        rows = _dim(x[0]) if x else 1
    else:
        rows = prod(_dim(d) for d in x[:-1]) if x else 1
    return 2 * rows * w.size


def layer_costs(view: GraphView) -> dict[str, dict[str, Any]]:
    """{node name: {op, weight, shape, params, flops}} for every layer with a constant weight."""
    out = {}
    for node in view.nodes():
        if node.op_type in RECURRENT and node.domain in ("", "ai.onnx") and len(node.input) > 2:
            cost = _recurrent(node, view)
            if cost is not None:
                out[node.name] = cost
            continue
        if node.op_type not in WEIGHTED or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        w = view.const(node.input[1])
        if w is None:
            continue
        bias = view.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        out[node.name] = {"op": node.op_type, "weight": node.input[1], "shape": list(w.shape),
                          "params": int(w.size + (bias.size if bias is not None else 0)),
                          "flops": int(_flops(node, view, w)),
                          "sized": node.op_type not in ("Conv", "ConvTranspose") or
                          _sized(view.shape(node.output[0] if node.op_type == "Conv" else node.input[0]))}
    return out


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


def total_params(model: onnx.ModelProto) -> int:
    """Floating-point weight elements: initializers and Constant nodes' tensor values, subgraphs included."""
    total = sum(prod(t.dims) for t in model.graph.initializer if t.data_type in _FLOATS)
    for node, _ in walk_nodes(model.graph):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            total += sum(prod(a.t.dims) for a in node.attribute if a.name == "value" and a.t.data_type in _FLOATS)
    for graph in sub_graphs(model.graph):
        total += sum(prod(t.dims) for t in graph.initializer if t.data_type in _FLOATS)
    return int(total)


def walk_nodes(graph: onnx.GraphProto) -> Iterator[tuple[onnx.NodeProto, onnx.GraphProto]]:
    for node in graph.node:
        yield node, graph
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from walk_nodes(g)


def sub_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    for node in graph.node:
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield g
                yield from sub_graphs(g)


def compare(original: onnx.ModelProto, before: onnx.ModelProto, after: onnx.ModelProto,
            shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
    """Totals and per-layer figures of two versions of one model (same node names); total parameters before
    are counted on `original`, the model as the user gave it. shapes: input name -> a sample's shape, which
    sizes the dynamic dimensions FLOPs count."""
    b, a = layer_costs(GraphView(with_shapes(before, shapes))), layer_costs(GraphView(with_shapes(after, shapes)))
    layers = []
    for name, lb in b.items():
        la = a.get(name, lb)
        layers.append({"name": name, "op": lb["op"], "shape": [lb["shape"], la["shape"]],
                       "params": [lb["params"], la["params"]], "flops": [lb["flops"], la["flops"]]})
    pb, pa = total_params(original), total_params(after)
    fb, fa = sum(x["flops"] for x in b.values()), sum(x["flops"] for x in a.values())
    unsized = [name for name, x in b.items() if not x["sized"]]
    flops: dict[str, Any] = {"before": fb, "after": fa, "ratio": round(fa / fb, 4) if fb else 1.0}
    if unsized:  # spatial sizes unknown: those layers counted for one output position only
        flops["unsized_layers"] = len(unsized)
    return {"params": {"before": pb, "after": pa, "ratio": round(pa / pb, 4) if pb else 1.0},
            "flops": flops,
            "layers": layers}
