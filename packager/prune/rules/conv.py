"""Conv and ConvTranspose.

Dense convolution (group = 1), weight W[Cout, Cin, kh, kw]:
  * output channel o is filter W[o] and bias b[o]: a fresh label per output channel;
  * input channel c is the slice W[:, c]: removed when the producer of channel c loses it.

    x: [N, 8, H, W] labels [0..7];  y = Conv(x, W[16, 8, 3, 3], b[16])  ->  y labels [8..23]
    remove units {2} and {9}:  W -> W[[0,2..15]][:, [0,1,3..7]] = [15, 7, 3, 3], b -> b[[0,2..15]]

Grouped convolution (group = g, Cin = g*a, Cout = g*m), weight W[Cout, a, kh, kw]: output channels of
group j read only input channels of group j, and W's second axis is shared by all groups, so a channel can
leave only with its whole group. Every input and output channel of group j is united into one unit, and
removing it removes W[j*m:(j+1)*m], the producer's channels j*a..(j+1)*a-1, and decrements `group`.
Depthwise convolution is the case a = 1: input channel c and output channels c*m..c*m+m-1 are one unit.

    x labels [0 1 2 3];  y = Conv(x, W[4, 1, 3, 3], group=4)  ->  y labels [4 5 6 7], united 0-4 1-5 2-6 3-7
    remove {1, 5}:  W -> W[[0, 2, 3]], group -> 3, and the producer of x loses its channel 1

A grouped convolution whose input channels are not tracked (a graph input) keeps its channels.
ConvTranspose (group = 1), weight W[Cin, Cout, ...], is the same with the two axes swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..context import Context, Edit, Keep
from ..graph import attr
from ..labels import Track
from .registry import rule


@dataclass
class GroupEdit(Edit):
    """`group` follows the number of groups left: each kept group keeps all `per_group` output channels."""

    node: str
    labels: np.ndarray
    per_group: int

    def apply(self, graph: onnx.GraphProto, keep: Keep) -> None:
        node = next(n for n in graph.node if n.name == self.node)
        kept = int(keep(self.labels).sum())
        for a in node.attribute:
            if a.name == "group":
                a.i = kept // self.per_group


def _weights(node: onnx.NodeProto, ctx: Context) -> tuple[np.ndarray, str | None] | None:
    w = ctx.const(node.input[1])
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if w is None or w.ndim < 3 or (bias is not None and ctx.const(bias) is None):
        ctx.block_inputs(node, f"is read by {node.op_type} node {node.name!r}, whose weights are not constants")
        return None
    return w, bias


def _input_track(node: onnx.NodeProto, ctx, channels: int) -> Track | None:
    x = ctx.track(node.input[0])
    if x is not None and (x.axis != 1 or x.size != channels):
        ctx.block(x.labels, f"{node.input[0]!r} reaches {node.op_type} {node.name!r} on an axis it does not "
                  "read as channels")
        return None
    return x


@rule("Conv")
def conv(node: onnx.NodeProto, ctx: Context) -> None:
    found = _weights(node, ctx)
    if found is None:
        return
    w, bias = found
    group = int(attr(node, "group", 1))
    cout, per_in = w.shape[0], w.shape[1]
    x = _input_track(node, ctx, per_in * group)
    out = ctx.new(cout)
    if group == 1:
        if x is not None:
            ctx.reader(node, node.input[0], x, node.input[1], 1)
    elif x is None:
        ctx.block(out, f"grouped {node.op_type} {node.name!r} (group={group}) reads channels that cannot be "
                  "pruned, and its groups must stay equal")
    else:
        per_out = cout // group
        for j in range(group):
            ctx.labels.union_all(np.concatenate([x.labels[j * per_in:(j + 1) * per_in],
                                                 out[j * per_out:(j + 1) * per_out]]))
        ctx.edit(GroupEdit(node.name, out, per_out))
    ctx.layer(node, node.output[0], 1, w.ndim, node.input[1], 0, out)
    if bias:
        ctx.slice(node, bias, 0, out)


@rule("ConvTranspose")
def conv_transpose(node: onnx.NodeProto, ctx: Context) -> None:
    found = _weights(node, ctx)
    if found is None:
        return
    w, bias = found
    if int(attr(node, "group", 1)) != 1 or attr(node, "output_shape") is not None:
        ctx.block_inputs(node, f"is read by grouped or output_shape ConvTranspose {node.name!r}")
        return
    x = _input_track(node, ctx, w.shape[0])
    if x is not None:
        ctx.reader(node, node.input[0], x, node.input[1], 0)
    out = ctx.new(w.shape[1])
    ctx.layer(node, node.output[0], 1, w.ndim, node.input[1], 1, out)
    if bias:
        ctx.slice(node, bias, 0, out)
