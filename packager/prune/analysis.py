"""Dependency analysis: walk the graph once, let each op's rule label, hand on or unite channels, and
collect what removing a unit would have to rewrite.

The result, a `Plan`, lists
  * `layers`:  Conv/Gemm/MatMul outputs whose channels carry fresh labels (what pruning chooses among),
  * `readers`: layers that read tracked channels through their weights (their input slices shrink, and
    `--reconstruct` refits them),
  * `slices`:  every (initializer, axis) whose positions follow labels: filters, biases, BatchNorm
    parameters, broadcast constants, input slices,
  * `edits`:   attributes and shape constants that must follow the new sizes (a grouped Conv's `group`,
    a Reshape's target shape, a Split's sizes),
and, through `labels`, which units are blocked and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import onnx

from .graph import GraphView, subgraph_reads
from .labels import Labels, Track

Keep = Callable[[np.ndarray], np.ndarray]  # labels -> bool mask of the positions that stay


@dataclass(frozen=True)
class ParamSlice:
    """Initializer `param` loses position i along `axis` when the unit of `labels[i]` is removed.

    role: "out" (a layer's filters or neurons), "in" (a layer's input slices), "param" (per-channel values:
    biases, BatchNorm statistics, broadcast constants).
    """

    param: str
    axis: int
    labels: np.ndarray
    role: str
    node: str


@dataclass(frozen=True)
class Layer:
    """A node whose weights create `labels` on `output` (channel axis `axis`)."""

    node: str
    op: str
    output: str
    axis: int
    labels: np.ndarray
    weight: str


@dataclass(frozen=True)
class Reader:
    """A node that reads the tracked channels of `input` through the weight `weight` (axis `weight_axis`)."""

    node: str
    op: str
    input: str
    track: Track
    weight: str
    weight_axis: int


class Edit:
    """A change to an attribute or a shape constant that follows the kept positions."""

    node: str

    def apply(self, graph: onnx.GraphProto, keep: Keep) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Context:
    """What a rule sees and records. Rules run once per node, in graph (topological) order."""

    view: GraphView
    labels: Labels = field(default_factory=Labels)
    tracks: dict[str, Track] = field(default_factory=dict)
    slices: list[ParamSlice] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    readers: list[Reader] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    claims: set[tuple[str, str]] = field(default_factory=set)

    # --- reading the graph ---
    def const(self, name: str) -> np.ndarray | None:
        return self.view.const(name) if name else None

    def shape(self, name: str):
        return self.view.shape(name)

    def rank(self, name: str) -> int | None:
        return self.view.rank(name)

    def track(self, name: str) -> Track | None:
        return self.tracks.get(name)

    def set_track(self, name: str, track: Track) -> None:
        self.tracks[name] = track

    # --- labels ---
    def new(self, n: int) -> np.ndarray:
        return self.labels.new(n)

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        self.labels.union(a, b)

    def block(self, labels: np.ndarray, reason: str) -> None:
        self.labels.block(labels, reason)

    def block_inputs(self, node: onnx.NodeProto, reason: str) -> None:
        """Leave alone every tracked tensor `node` reads (directly or inside its subgraphs)."""
        for name in [*node.input, *subgraph_reads(node)]:
            t = self.track(name)
            if t is not None:
                self.block(t.labels, f"{name!r} {reason}")

    # --- what removal rewrites ---
    def slice(self, node: onnx.NodeProto, param: str, axis: int, labels: np.ndarray, role: str = "param") -> None:
        self.slices.append(ParamSlice(param, axis, np.asarray(labels), role, node.name))
        self.claims.add((node.name, param))

    def layer(self, node: onnx.NodeProto, output: str, axis: int, rank: int, weight: str, weight_axis: int,
              labels: np.ndarray) -> None:
        """Record a layer creating `labels` on `output`, whose filters lie along `weight_axis`."""
        self.layers.append(Layer(node.name, node.op_type, output, axis, labels, weight))
        self.slice(node, weight, weight_axis, labels, "out")
        self.set_track(output, Track(axis, rank, labels))

    def reader(self, node: onnx.NodeProto, name: str, track: Track, weight: str, weight_axis: int) -> None:
        self.readers.append(Reader(node.name, node.op_type, name, track, weight, weight_axis))
        self.slice(node, weight, weight_axis, track.labels, "in")

    def edit(self, edit: Edit) -> None:
        self.edits.append(edit)


@dataclass
class Plan:
    """The analysis of one model: see the module docstring."""

    model: onnx.ModelProto
    view: GraphView
    labels: Labels
    tracks: dict[str, Track]
    slices: list[ParamSlice]
    layers: list[Layer]
    readers: list[Reader]
    edits: list[Edit]
    blocked: dict[int, str]

    def keep_fn(self, removed: Iterable[int]) -> Keep:
        """A function from labels to the mask of positions that stay when the units `removed` go."""
        removed_arr = np.fromiter(removed, np.int64)

        def keep(labels: np.ndarray) -> np.ndarray:
            return ~np.isin(self.labels.roots(labels), removed_arr)

        return keep

    def units(self, labels: np.ndarray) -> np.ndarray:
        return np.unique(self.labels.roots(labels))


def analyse(model: onnx.ModelProto) -> Plan:
    """Analyse a model returned by graph.prepare()."""
    from .rules import lookup

    view = GraphView(model)
    ctx = Context(view)
    for node in view.nodes():
        lookup(node)(node, ctx)
        for name in subgraph_reads(node):
            t = ctx.track(name)
            if t is not None:
                ctx.block(t.labels, f"{name!r} is read inside a subgraph of node {node.name!r}")
    for name in view.outputs:
        t = ctx.track(name)
        if t is not None:
            ctx.block(t.labels, f"{name!r} is a graph output, whose shape must stay")
    _unite_shared(ctx)
    _check_claims(ctx)
    return Plan(model, view, ctx.labels, ctx.tracks, ctx.slices, ctx.layers, ctx.readers, ctx.edits,
                ctx.labels.blocked_units())


def _unite_shared(ctx: Context) -> None:
    """An initializer sliced by several rules along one axis (tied weights, a shared constant): its
    positions are removed together, so their labels are united."""
    first: dict[tuple[str, int], ParamSlice] = {}
    for s in ctx.slices:
        key = (s.param, s.axis)
        if key not in first:
            first[key] = s
        elif len(first[key].labels) == len(s.labels):
            ctx.union(first[key].labels, s.labels)
        else:
            reason = f"initializer {s.param!r} is sliced inconsistently by {first[key].node!r} and {s.node!r}"
            ctx.block(first[key].labels, reason)
            ctx.block(s.labels, reason)


def _check_claims(ctx: Context) -> None:
    """A sliced initializer that some node reads without a rule for it would break that node: leave its
    channels alone."""
    for s in ctx.slices:
        for node, _ in ctx.view.uses(s.param):
            if (node, s.param) not in ctx.claims:
                ctx.block(s.labels, f"initializer {s.param!r} is also read by node {node!r}")
                break
