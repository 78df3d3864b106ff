"""Flatten, Reshape, Squeeze, Unsqueeze, Transpose: ops that move the channel axis or merge it with others.

Flatten into a Gemm (channel x spatial): flattening [N, C, H, W] lays channel c out as the H*W positions
c*H*W .. (c+1)*H*W - 1 of the row, so each label is repeated H*W times, and a removed channel removes that
whole run of the Gemm's input columns:

    x: [N, 4, 2, 2] labels [0 1 2 3];  f = Flatten(x)  ->  f labels [0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3]
    remove {2}:  the Gemm reading f loses columns 8..11

Reshape may do the same merge (target [N, C*H*W], [0, -1], [-1, 1024], ...) or only move the channel axis
([N, C, 1, 1] -> [N, C]). It is accepted when the channel axis lands whole on one output axis, possibly
merged with the axes after it, and the target shape constant can be rewritten: its entry for that axis
becomes the kept size (a -1 stays -1). This is checked by replaying the reshape with a smaller channel
count. A Reshape that splits the channel axis (attention heads: [N, T, D] -> [N, T, H, D/H]) is left
alone.

Squeeze, Unsqueeze and Transpose move the channel axis to its new index; squeezing it is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import onnx
from onnx import numpy_helper

from ..context import Context, Edit, Keep
from ..graph import attr
from ..labels import Track
from .registry import normalize_axis, rule


def _static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


@rule("Flatten")
def flatten(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    shape = ctx.shape(node.input[0])
    axis = normalize_axis(int(attr(node, "axis", 1)), x.rank)
    merged = shape[axis:] if shape is not None else None
    if x.axis < axis or not _static(merged):
        ctx.block(x.labels, f"{node.input[0]!r} is flattened by {node.name!r} with its batch axes or unknown sizes")
        return
    outer, inner = prod(shape[axis:x.axis]), prod(shape[x.axis + 1:])
    ctx.set_track(node.output[0], Track(1, 2, np.tile(np.repeat(x.labels, inner), outer)))


@dataclass
class ShapeEdit(Edit):
    """Entry `index` of the Reshape's target shape becomes (kept positions) * `inner`, unless it is -1."""

    node: str
    index: int
    labels: np.ndarray
    inner: int

    def apply(self, graph: onnx.GraphProto, keep: Keep) -> None:
        node = next(n for n in graph.node if n.name == self.node)
        old = next(t for t in graph.initializer if t.name == node.input[1])
        target = numpy_helper.to_array(old).copy()
        if target[self.index] == -1:
            return
        target[self.index] = int(keep(self.labels).sum()) * self.inner
        name = f"{self.node}__shape"  # a fresh constant: the old one may be shared with other Reshapes
        graph.initializer.append(numpy_helper.from_array(target.astype(np.int64), name))
        node.input[1] = name


def _reshape(shape: list[int], target: np.ndarray, allowzero: bool) -> list[int] | None:
    """The output shape of Reshape(shape, target), or None if it is invalid."""
    out = [shape[i] if (t == 0 and not allowzero and i < len(shape)) else int(t) for i, t in enumerate(target)]
    if out.count(-1) > 1:
        return None
    known = prod(d for d in out if d != -1)
    total = prod(shape)
    if -1 in out:
        if known == 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    return out if prod(out) == total else None


def _landing(shape: list[int], out: list[int], axis: int) -> tuple[int, int] | None:
    """(output axis, positions per channel) where input `axis` lands whole, merged with the axes after it."""
    before = prod(shape[:axis])
    for j in range(len(out)):
        if prod(out[:j]) == before and out[j] % shape[axis] == 0:
            inner = out[j] // shape[axis]
            tail = shape[axis + 1:]
            if any(prod(tail[:e]) == inner for e in range(len(tail) + 1)):
                return j, inner
    return None


@rule("Reshape")
def reshape(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    target = ctx.const(node.input[1])
    shape = ctx.shape(node.input[0])
    why = f"{node.input[0]!r} is reshaped by {node.name!r} in a way that splits or scatters its channels"
    if target is None or shape is None or not _static(shape[x.axis:]):
        ctx.block(x.labels, why + " (or the target shape is not a constant)")
        return
    # symbolic leading dimensions (the batch) are replayed with a stand-in size
    concrete = [d if isinstance(d, int) else 7 for d in shape]
    allowzero = bool(attr(node, "allowzero", 0))
    out = _reshape(concrete, target, allowzero)
    landing = _landing(concrete, out, x.axis) if out else None
    if landing is None:
        ctx.block(x.labels, why)
        return
    assert out is not None  # a landing is only computed for a valid output shape
    j, inner = landing
    smaller = concrete[:x.axis] + [concrete[x.axis] - 1] + concrete[x.axis + 1:]
    edited = target.copy()
    if edited[j] != -1:
        edited[j] = (concrete[x.axis] - 1) * inner
    replay = _reshape(smaller, edited, allowzero)
    if replay != out[:j] + [(concrete[x.axis] - 1) * inner] + out[j + 1:]:
        ctx.block(x.labels, why)
        return
    ctx.edit(ShapeEdit(node.name, j, np.repeat(x.labels, inner), 1))
    ctx.set_track(node.output[0], Track(j, len(out), np.repeat(x.labels, inner)))


def _axes(node: onnx.NodeProto, ctx: Context) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node.input[1])
        return None if axes is None else [int(a) for a in np.ravel(axes)]
    axes = attr(node, "axes")
    return None if axes is None else [int(a) for a in axes]


@rule("Squeeze")
def squeeze(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    axes = _axes(node, ctx)
    if axes is None:
        shape = ctx.shape(node.input[0])
        axes = None if shape is None else [i for i, d in enumerate(shape) if d == 1]
    axes = None if axes is None else [normalize_axis(a, x.rank) for a in axes]
    if axes is None or x.axis in axes:
        ctx.block(x.labels, f"{node.input[0]!r} is squeezed by {node.name!r} along unknown axes or its channels")
        return
    ctx.set_track(node.output[0], Track(x.axis - sum(a < x.axis for a in axes), x.rank - len(axes), x.labels))


@rule("Unsqueeze")
def unsqueeze(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    axes = _axes(node, ctx)
    if axes is None:
        ctx.block(x.labels, f"{node.input[0]!r} is unsqueezed by {node.name!r} along non-constant axes")
        return
    rank = x.rank + len(axes)
    inserted = sorted(normalize_axis(a, rank) for a in axes)
    kept_axes = [i for i in range(rank) if i not in inserted]
    ctx.set_track(node.output[0], Track(kept_axes[x.axis], rank, x.labels))


@rule("Transpose")
def transpose(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    perm = attr(node, "perm") or list(range(x.rank))[::-1]
    ctx.set_track(node.output[0], Track(list(perm).index(x.axis), x.rank, x.labels))
