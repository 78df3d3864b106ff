"""Dependency analysis: walk the graph once, let each op's rule label, hand on or unite channels, and
collect what removing a unit would have to rewrite.

The result, a `Dependencies`, lists
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

from dataclasses import dataclass
from collections.abc import Iterable

import numpy as np
import onnx

from .context import Context, Edit, Keep, Layer, ParamSlice, Reader
from .graph import GraphView, subgraph_reads
from .labels import Labels, Track
from .rules import lookup


@dataclass
class Dependencies:
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


def analyse(model: onnx.ModelProto) -> Dependencies:
    """Analyse a model returned by graph.prepare()."""
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
    return Dependencies(model, view, ctx.labels, ctx.tracks, ctx.slices, ctx.layers, ctx.readers, ctx.edits,
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
