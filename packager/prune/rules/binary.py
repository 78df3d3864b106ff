"""Add, Sub, Mul, Div and friends: elementwise ops of several inputs, with numpy broadcasting.

Residual Add: when two inputs both carry tracked channels, output channel c is a function of channel c of
each, so the two sides' labels are united position by position: coupled channels go together or not at all.

    a = Conv_1(x)  labels [0 1 2 3]          y = Add(a, Conv_3(Relu(Conv_2(a))))
    b = Conv_3(.)  labels [8 9 10 11]        unites 0-8, 1-9, 2-10, 3-11
    remove {1, 9}:  Conv_1 and Conv_3 lose filter 1, Conv_2 loses input slice 1, y has 3 channels

A constant that broadcasts along the channel axis (a bias of shape [C] against [N, T, C], or [C, 1, 1]
against [N, C, H, W]) loses entry c with the channel; one of size 1 there is left as is:

    h labels [0..511] (axis 2 of [N, T, 512]);  y = Add(h, b[512])  ->  b loses the removed entries

A non-constant input with the channel dimension but no tracked labels (a graph input, a tensor no rule
tracks) would no longer line up, so the tracked side is left alone.
"""

from __future__ import annotations

import onnx

from ..context import Context
from ..labels import Track
from .registry import rule


@rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu")
def broadcast(node: onnx.NodeProto, ctx: Context) -> None:
    inputs = [i for i in node.input if i]
    tracked = [(i, t) for i in inputs if (t := ctx.track(i)) is not None]
    if not tracked:
        return
    out_rank = ctx.rank(node.output[0]) or max(t.rank for _, t in tracked)
    first = tracked[0][1]
    axis = first.axis + out_rank - first.rank
    for _, t in tracked[1:]:
        if t.axis + out_rank - t.rank != axis or t.size != first.size:
            ctx.block_inputs(node, f"is combined by {node.op_type} {node.name!r} with channels on another axis")
            return
        ctx.union(first.labels, t.labels)
    for name in inputs:
        if ctx.track(name) is None and not _fits(node, ctx, name, axis, out_rank, first):
            ctx.block_inputs(node, f"is combined by {node.op_type} {node.name!r} with {name!r}, whose channels "
                             "cannot be pruned")
            return
    ctx.set_track(node.output[0], Track(axis, out_rank, first.labels))


def _fits(node: onnx.NodeProto, ctx, name: str, axis: int, out_rank: int, track: Track) -> bool:
    """Whether untracked input `name` broadcasts over the channels, or is a constant that can be sliced."""
    shape = ctx.shape(name)
    if shape is None:
        return False
    pos = axis - (out_rank - len(shape))
    if pos < 0 or shape[pos] == 1:
        return True
    if shape[pos] == track.size and ctx.const(name) is not None:
        ctx.slice(node, name, pos, track.labels)
        return True
    return False
