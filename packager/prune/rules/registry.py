"""The registry of per-op pruning rules: op type -> handler(node, ctx), with a fallback that leaves alone.

A rule reads its inputs' tracks (`ctx.track`), records what its weights create or read (`ctx.layer`,
`ctx.reader`), which initializers follow the labels (`ctx.slice`), which labels must go together
(`ctx.union`), which it cannot handle (`ctx.block`), and the tracks of its outputs (`ctx.set_track`).
An op without a rule blocks every tracked tensor it reads: what the analysis cannot prove safe stays.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ..context import Context

Rule = Callable[[onnx.NodeProto, Context], None]

RULES: dict[str, Rule] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return register


def unknown(node: onnx.NodeProto, ctx: Context) -> None:
    where = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    ctx.block_inputs(node, f"is read by {where} node {node.name!r}, which has no pruning rule")


def lookup(node: onnx.NodeProto) -> Rule:
    if node.domain not in ("", "ai.onnx"):
        return unknown
    return RULES.get(node.op_type, unknown)


def normalize_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
