"""Pooling, padding, resizing, reductions and softmax: ops that work on each channel separately.

Pooling over the spatial axes of [N, C, H, W] keeps channel c in place, so labels pass through:

    x labels [0 1 2 3];  y = MaxPool(x)  ->  y labels [0 1 2 3]

The same holds for Pad and Resize when they leave the channel axis alone (zero padding there, scale 1),
for a reduction or softmax over other axes (the channel axis moves when a reduction drops axes before
it), and is false when they act across channels: a mean over channels changes when one is removed, so
those channels are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..context import Context
from ..graph import attr
from ..labels import Track
from .registry import normalize_axis, rule

POOLS = ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
REDUCES = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum")


@rule(*POOLS)
def pool(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    if x.axis != 1 or (len(node.output) > 1 and node.output[1]):
        ctx.block(x.labels, f"{node.input[0]!r} is pooled by {node.name!r} across channels or with indices")
        return
    ctx.set_track(node.output[0], x)


@rule("Pad")
def pad(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    pads = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else attr(node, "pads")
    axes = ctx.const(node.input[3]) if len(node.input) > 3 and node.input[3] else np.arange(x.rank)
    if pads is None or axes is None:
        ctx.block(x.labels, f"{node.input[0]!r} is padded by {node.name!r} with non-constant pads")
        return
    flat_pads = np.ravel(pads)
    pad_axes = [normalize_axis(int(a), x.rank) for a in np.ravel(axes)]
    n = len(pad_axes)
    touched = any(a == x.axis and (flat_pads[i] or flat_pads[i + n]) for i, a in enumerate(pad_axes))
    if touched:
        ctx.block(x.labels, f"{node.input[0]!r} is padded along its channels by {node.name!r}")
        return
    ctx.set_track(node.output[0], x)


@rule("Resize", "Upsample")
def resize(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    scales_at = 1 if node.op_type == "Upsample" else 2
    scales = ctx.const(node.input[scales_at]) if len(node.input) > scales_at and node.input[scales_at] else None
    has_sizes = len(node.input) > 3 and node.input[3]
    if has_sizes or scales is None or attr(node, "axes") is not None or np.ravel(scales)[x.axis] != 1:
        ctx.block(x.labels, f"{node.input[0]!r} is resized by {node.name!r} with sizes or a channel scale")
        return
    ctx.set_track(node.output[0], x)


@rule(*REDUCES)
def reduce(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    if len(node.input) > 1 and node.input[1]:
        raw_axes = ctx.const(node.input[1])
    else:
        raw_axes = attr(node, "axes")
    axes = None if raw_axes is None else [normalize_axis(int(a), x.rank) for a in np.ravel(raw_axes)]
    if axes is None or not axes or x.axis in axes:
        ctx.block(x.labels, f"{node.input[0]!r} is reduced across its channels by {node.op_type} {node.name!r}")
        return
    if int(attr(node, "keepdims", 1)):
        ctx.set_track(node.output[0], x)
    else:
        ctx.set_track(node.output[0], Track(x.axis - sum(a < x.axis for a in axes), x.rank - len(axes), x.labels))


@rule("Softmax", "LogSoftmax", "Hardmax")
def softmax(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    old = ctx.view.opset < 13  # before opset 13 softmax covers every axis from `axis` on
    axis = normalize_axis(int(attr(node, "axis", 1 if old else -1)), x.rank)
    if axis == x.axis or (old and x.axis > axis):
        ctx.block(x.labels, f"{node.input[0]!r} is normalised across its channels by {node.op_type} {node.name!r}")
        return
    ctx.set_track(node.output[0], x)
