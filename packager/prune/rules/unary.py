"""Activations and other one-input elementwise ops: output channel c is a function of input channel c only,
so the labels pass through unchanged.

    x labels [0 1 2];  y = Relu(x)  ->  y labels [0 1 2];  remove {1}: y simply has one channel fewer

Extra inputs (Clip's bounds) must be scalars: a per-channel bound would have to be sliced, and is left
alone instead. Dropout is accepted only when its mask output is unused.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..context import Context
from .registry import rule

ACTIVATIONS = (
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softplus",
    "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Identity", "Dropout", "Clip", "Cast", "Not",
)


@rule(*ACTIVATIONS)
def elementwise(node: onnx.NodeProto, ctx: Context) -> None:
    x = ctx.track(node.input[0])
    if x is None:
        return
    bounds = [ctx.const(b) for b in node.input[1:] if b]
    mask_used = node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]
    if mask_used or any(b is None or np.size(b) != 1 for b in bounds):
        ctx.block_inputs(node, f"is read by {node.op_type} {node.name!r} with non-scalar or non-constant "
                         "extra inputs (or a used mask)")
        return
    ctx.set_track(node.output[0], x)
