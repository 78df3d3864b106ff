"""Gemm and MatMul with a constant weight: fully connected layers and transformer projections.

Gemm Y = alpha * A @ op(B) + beta * C, with op(B) = B.T when transB (PyTorch's Linear: B[N, K]):
  * output neuron n is row n of B (column n without transB) and entry n of C: a fresh label each;
  * input feature k is column k of B (row k without transB).

    h labels [0..127];  y = Gemm(h, B[10, 128], C[10], transB=1)  ->  y labels [128..137]
    remove {5}:  B -> B[:, [0..4, 6..127]] = [10, 127]

MatMul Y = A @ W, W[K, N]: the same, with the features on A's last axis. In a transformer MLP block

    h = MatMul(x, W_up[D, 4D]) -> Add(b_up[4D]) -> Gelu -> MatMul(., W_down[4D, D]) -> Add(b_down[D])

the hidden neurons carry the labels of W_up's columns; removing neuron j removes column j of W_up, entry j
of b_up and row j of W_down. The output's D channels feed the residual stream, a graph output or a
LayerNormalization, and stay. A MatMul of two activations (attention scores) reads channels no weight can
drop: both sides are left alone.
"""

from __future__ import annotations

import onnx

from ..context import Context
from ..graph import attr
from .registry import rule


@rule("Gemm")
def gemm(node: onnx.NodeProto, ctx: Context) -> None:
    b = ctx.const(node.input[1])
    c_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    c = ctx.const(c_name) if c_name else None
    if b is None or b.ndim != 2 or int(attr(node, "transA", 0)) or (c_name and c is None):
        ctx.block_inputs(node, f"is read by Gemm {node.name!r} (transposed input or non-constant weights)")
        return
    k_axis = 1 if int(attr(node, "transB", 0)) else 0
    x = ctx.track(node.input[0])
    if x is not None:
        if x.axis == 1 and x.size == b.shape[k_axis]:
            ctx.reader(node, node.input[0], x, node.input[1], k_axis)
        else:
            ctx.block(x.labels, f"{node.input[0]!r} reaches Gemm {node.name!r} on its rows, not its features")
    out = ctx.new(b.shape[1 - k_axis])
    ctx.layer(node, node.output[0], 1, 2, node.input[1], 1 - k_axis, out)
    if c is not None and c.ndim >= 1 and c.shape[-1] == len(out) and all(d == 1 for d in c.shape[:-1]):
        assert c_name is not None  # c is only read when c_name is set
        ctx.slice(node, c_name, c.ndim - 1, out)
    elif c is not None and c.size != 1:
        ctx.block(out, f"Gemm {node.name!r} adds a bias that is not one value per neuron")


@rule("MatMul")
def matmul(node: onnx.NodeProto, ctx: Context) -> None:
    w = ctx.const(node.input[1])
    if w is None or w.ndim != 2:
        ctx.block_inputs(node, f"is read by MatMul {node.name!r}, whose second operand is not a constant matrix")
        return
    x = ctx.track(node.input[0])
    if x is not None:
        if x.axis == x.rank - 1 and x.size == w.shape[0]:
            ctx.reader(node, node.input[0], x, node.input[1], 0)
        else:
            ctx.block(x.labels, f"{node.input[0]!r} reaches MatMul {node.name!r} on an axis it does not contract")
    rank = ctx.rank(node.output[0]) or (x.rank if x is not None else ctx.rank(node.input[0]))
    if rank is None:
        return  # the output's rank is unknown: its neurons are not offered for pruning
    out = ctx.new(w.shape[1])
    ctx.layer(node, node.output[0], rank - 1, rank, node.input[1], 1, out)
