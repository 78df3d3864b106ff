"""Concat and Split.

Concat along the channel axis lays its inputs' labels end to end, so a removed channel of input i removes
the output position at i's offset plus its index, and the offsets of later inputs shift by themselves
(Concat recomputes them from the new sizes):

    a labels [0 1 2], b labels [3 4 5 6];  y = Concat(a, b, axis=1)  ->  y labels [0 1 2 3 4 5 6]
    remove {1, 4}:  y has a's channels 0, 2 and b's channels 0, 2, 3; a reader of y loses input slices 1, 4

An input without tracked channels (a graph input, a constant) occupies positions that stay. Concat along
another axis needs every input to carry the same channels: their labels are united position by position.

Split along the channel axis hands each output its segment of the labels, and its `split` sizes follow
the kept positions; along another axis every output keeps the input's labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..context import Context, Edit, Keep
from ..graph import attr
from ..labels import Track
from .registry import normalize_axis, rule


@rule("Concat")
def concat(node: onnx.NodeProto, ctx: Context) -> None:
    tracks = [ctx.track(i) for i in node.input]
    known = [t for t in tracks if t is not None]
    if not known:
        return
    rank = known[0].rank
    axis = normalize_axis(int(attr(node, "axis")), rank)
    if any(t.axis != known[0].axis or t.rank != rank for t in known):
        ctx.block_inputs(node, f"is concatenated by {node.op_type} {node.name!r} with channels on another axis")
        return
    if known[0].axis == axis:
        parts = []
        for name, t in zip(node.input, tracks):
            if t is not None:
                parts.append(t.labels)
                continue
            shape = ctx.shape(name)
            if shape is None or not isinstance(shape[axis], int):
                ctx.block_inputs(node, f"is concatenated by {node.name!r} with {name!r} of unknown size")
                return
            fixed = ctx.new(shape[axis])
            ctx.block(fixed, f"{name!r} enters Concat {node.name!r} without prunable channels")
            parts.append(fixed)
        ctx.set_track(node.output[0], Track(axis, rank, np.concatenate(parts)))
        return
    if len(known) != len(tracks) or any(t.size != known[0].size for t in known):
        ctx.block_inputs(node, f"is concatenated by {node.op_type} {node.name!r} along another axis with "
                         "tensors whose channels cannot be pruned")
        return
    for t in known[1:]:
        ctx.union(known[0].labels, t.labels)
    ctx.set_track(node.output[0], known[0])


@dataclass
class SplitEdit(Edit):
    """Write the kept size of each output's segment as the Split's sizes (input or attribute)."""

    node: str
    segments: list[np.ndarray]
    as_input: bool

    def apply(self, graph: onnx.GraphProto, keep: Keep) -> None:
        node = next(n for n in graph.node if n.name == self.node)
        sizes = np.array([int(keep(s).sum()) for s in self.segments], np.int64)
        for a in list(node.attribute):
            if a.name in ("split", "num_outputs"):
                node.attribute.remove(a)
        if self.as_input:
            name = f"{self.node}__split_sizes"
            graph.initializer.append(numpy_helper.from_array(sizes, name))
            del node.input[1:]
            node.input.append(name)
        else:
            node.attribute.append(onnx.helper.make_attribute("split", sizes.tolist()))


@rule("Split")
def split(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    axis = normalize_axis(int(attr(node, "axis", 0)), x.rank)
    outputs = list(node.output)
    if axis != x.axis:
        for o in outputs:
            ctx.set_track(o, x)
        return
    sizes = _split_sizes(node, ctx, x.size)
    if sizes is None:
        ctx.block(x.labels, f"{node.input[0]!r} is split by {node.name!r} into sizes edgepack cannot read")
        return
    bounds = np.cumsum([0, *sizes])
    segments = [x.labels[bounds[i]:bounds[i + 1]] for i in range(len(outputs))]
    for o, seg in zip(outputs, segments):
        ctx.set_track(o, Track(x.axis, x.rank, seg))
    ctx.edit(SplitEdit(node.name, segments, ctx.view.opset >= 13))


def _split_sizes(node: onnx.NodeProto, ctx, total: int) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        sizes = ctx.const(node.input[1])
        return None if sizes is None else [int(s) for s in sizes]
    sizes = attr(node, "split")
    if sizes is not None:
        return [int(s) for s in sizes]
    n = len(node.output)
    if total % n:
        return None
    return [total // n] * n
