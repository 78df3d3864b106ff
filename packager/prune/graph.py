"""A read-mostly view of an ONNX graph for the pruning analysis: constants, shapes, consumers.

`prepare(model)` returns a copy in which every node has a unique name, every `Constant` node holding a
tensor has become an initializer (same values), every Identity of an initializer is read through, and a
1-D initializer read by several nodes is copied for each, so that weights are found in one place and
shared where it matters, whatever the exporter wrote. Shapes come from onnx shape inference; dimensions it cannot
resolve are `None`, named
symbolic dimensions (`N`) are kept as strings.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..dims import dim_of

Dim = int | str | None

# Initializers bigger than this are left out of the copy given to shape inference (it needs only their dims).
_INFER_DATA_LIMIT = 1 << 16


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    seen: set[str] = set()
    outputs = {o.name for o in g.output}
    keep = []
    for i, node in enumerate(g.node):
        if not node.name or node.name in seen:
            name = f"{node.op_type}_{i}"
            node.name = name if name not in seen else f"{name}_{len(seen)}"
        seen.add(node.name)
        value = _constant_tensor(node)
        if value is not None and node.output[0] not in outputs:
            value.name = node.output[0]
            g.initializer.append(value)
        else:
            keep.append(node)
    keep = _drop_constant_identities(g, keep, outputs)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
    _untie_vectors(g)
    return out


def _untie_vectors(g: onnx.GraphProto) -> None:
    """Exporters store equal initializers once (the zero biases of deep-copied transformer layers): give
    every extra reader of a shared 1-D initializer its own copy, so that one bias does not tie the channels
    of unrelated layers together. Shared matrices (tied weights) stay shared and tie their layers."""
    inits = {t.name: t for t in g.initializer if len(t.dims) == 1}
    seen: set[str] = set()
    for node in g.node:
        for i, name in enumerate(node.input):
            if name not in inits:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name}_{i}"
                g.initializer.append(copy)
                node.input[i] = copy.name
            seen.add(name)


def _drop_constant_identities(g: onnx.GraphProto, nodes: list[onnx.NodeProto], outputs: set[str]):
    """Identity(initializer) is how exporters share one weight between layers: read the initializer directly,
    so that the sharing is visible (the layers' channels are then pruned together)."""
    inits = {t.name for t in g.initializer} - {i.name for i in g.input}
    alias = {n.output[0]: n.input[0] for n in nodes
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    if not alias:
        return nodes
    kept = [n for n in nodes if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in kept:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    return kept


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    if attr.name != "value" or attr.type != onnx.AttributeProto.TENSOR:
        return None
    t = onnx.TensorProto()
    t.CopyFrom(attr.t)
    return t


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference on a copy whose big initializers carry dims but no data (fast, and past 2 GB)."""
    light = onnx.ModelProto()
    light.CopyFrom(model)
    for t in light.graph.initializer:
        if t.HasField("raw_data") and len(t.raw_data) > _INFER_DATA_LIMIT:
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.DEFAULT
    del light.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:  # a model onnx cannot infer: every shape unknown, so every ambiguous case is left alone
        return light


def _dims(vi: onnx.ValueInfoProto) -> list[Dim] | None:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    out: list[Dim] = []
    for d in t.shape.dim:
        out.append(dim_of(d))
    return out


class GraphView:
    """Constants, shapes and consumers of a prepared model's main graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        inputs = {i.name for i in self.graph.input}
        # An initializer that is also a graph input can be overridden by a feed: not a constant.
        self._init = {t.name: t for t in self.graph.initializer if t.name not in inputs}
        self._values: dict[str, np.ndarray] = {}
        inferred = infer_shapes(model)
        self._shapes: dict[str, list[Dim]] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = _dims(vi)
            if dims is not None:
                self._shapes[vi.name] = dims
        for t in self.graph.initializer:
            self._shapes[t.name] = list(t.dims)
        self.outputs = [o.name for o in self.graph.output]
        self._uses: dict[str, list[tuple[str, int]]] = {}
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                if name:
                    self._uses.setdefault(name, []).append((node.name, i))
            for name in subgraph_reads(node):
                self._uses.setdefault(name, []).append((node.name, -1))

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer that no feed can override, else None."""
        if name not in self._init:
            return None
        if name not in self._values:
            self._values[name] = numpy_helper.to_array(self._init[name])
        return self._values[name]

    def shape(self, name: str) -> list[Dim] | None:
        return self._shapes.get(name)

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def uses(self, name: str) -> list[tuple[str, int]]:
        """(node name, input index) of every read of `name`; index -1: read inside a node's subgraph."""
        return self._uses.get(name, [])

    def nodes(self) -> Iterator[onnx.NodeProto]:
        return iter(self.graph.node)


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    reads: set[str] = set()
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                local.update(n.output)
            for n in g.node:
                reads.update(x for x in n.input if x and x not in local)
                reads.update(x for x in subgraph_reads(n) if x not in local)
            reads.update(o.name for o in g.output if o.name not in local)
    return reads
