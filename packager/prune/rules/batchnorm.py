"""BatchNormalization, InstanceNormalization, LayerNormalization.

BatchNormalization and InstanceNormalization normalise each channel on its own, so channel c of the output
is channel c of the input, and their per-channel parameters (scale, bias, mean, variance) lose entry c with
it:

    x labels [0 1 2 3];  y = BatchNormalization(x, scale[4], B[4], mean[4], var[4])  ->  y labels [0 1 2 3]
    remove {2}:  scale, B, mean, var -> entries [0, 1, 3]

LayerNormalization normalises over the axes from `axis` on: if those include the channel axis, every
output depends on every channel's value (the mean and variance would change), so those channels are left
alone; otherwise channels pass through untouched.
"""

from __future__ import annotations

import onnx

from ..context import Context
from ..graph import attr
from ..labels import Track
from .registry import normalize_axis, rule


@rule("BatchNormalization", "InstanceNormalization")
def per_channel_norm(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    params = [p for p in node.input[1:] if p]
    extra_outputs = [o for o in node.output[1:] if o]
    if x.axis != 1 or extra_outputs or any((c := ctx.const(p)) is None or c.shape != (x.size,) for p in params):
        ctx.block_inputs(node, f"is normalised by {node.op_type} {node.name!r} in a way edgepack does not rewrite "
                         "(training outputs, non-constant or non-per-channel parameters, or channels not on axis 1)")
        return
    for p in params:
        ctx.slice(node, p, 0, x.labels)
    ctx.set_track(node.output[0], Track(x.axis, x.rank, x.labels))


@rule("LayerNormalization")
def layer_norm(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    first = normalize_axis(int(attr(node, "axis", -1)), x.rank)
    if x.axis >= first or any(o for o in node.output[1:]):
        ctx.block(x.labels, f"{node.input[0]!r} is normalised across its channels by LayerNormalization "
                  f"{node.name!r}")
        return
    ctx.set_track(node.output[0], x)
