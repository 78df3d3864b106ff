"""What a quantizer really did, counted on the graph it returned, subgraphs included.

A quantizer's return value proves nothing: on weights held in Constant nodes or inside If branches,
onnxruntime's quantizers return normally and change nothing. So every weight-carrying node of the result is
classified by the type its weight ends up stored in: an integer initializer read by a quantized op
(MatMulInteger, QLinearConv, MatMulNBits, ...), an integer initializer behind a DequantizeLinear (QDQ), an
fp16 initializer, or still fp32.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import onnx
from onnx import NodeProto, TensorProto, helper

from ..graphwalk import FLOAT_TYPES, QUANTIZED_WEIGHT_INPUTS, WEIGHT_INPUTS, graphs, nodes, scoped

_SMALL_INTS = (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4)
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", *QUANTIZED_WEIGHT_INPUTS}


def _dtype(tensor: TensorProto) -> str:
    return str(helper.tensor_dtype_to_np_dtype(tensor.data_type)) if tensor.data_type not in (
        TensorProto.INT4, TensorProto.UINT4) else ("int4" if tensor.data_type == TensorProto.INT4 else "uint4")


def _weight_dtype(node: NodeProto, scope: dict) -> str | None:
    """The type the node's weight is stored in, or None when the node has no constant weight."""
    if node.op_type == "MatMulNBits":  # B is packed into uint8 bytes; the attribute says how many bits
        return f"uint{next((a.i for a in node.attribute if a.name == 'bits'), 4)}"
    quantized_op = node.op_type in QUANTIZED_WEIGHT_INPUTS
    indices = QUANTIZED_WEIGHT_INPUTS.get(node.op_type) or WEIGHT_INPUTS.get(node.op_type, ())
    for idx in indices:
        source = scope.get(node.input[idx]) if idx < len(node.input) else None
        dq = source if isinstance(source, NodeProto) and source.op_type == "DequantizeLinear" else None
        behind_dq = dq is not None
        if dq is not None:
            source = scope.get(dq.input[0])
        if not isinstance(source, TensorProto) or len(source.dims) < 2:
            continue
        # a Gather reading an int8 table is a quantized embedding (dequantized after the lookup); an int64 one
        # is data
        if quantized_op or behind_dq or source.data_type in FLOAT_TYPES or source.data_type in _SMALL_INTS:
            return _dtype(source)
    return None


def census(model: onnx.ModelProto) -> dict[str, dict[str, list[str]]]:
    """{weight dtype: {op type: [node names]}} over every weight-carrying node, subgraphs included."""
    out: dict[str, dict[str, list[str]]] = {}
    for node, scope, _ in scoped(model):
        dtype = _weight_dtype(node, scope)
        if dtype is not None:
            out.setdefault(dtype, {}).setdefault(node.op_type, []).append(node.name)
    return out


def quant_ops(model: onnx.ModelProto) -> dict[str, int]:
    """How many quantization nodes of each type the model holds, subgraphs included."""
    counts = Counter(n.op_type for n, _ in nodes(model) if n.op_type in QUANT_OPS or n.op_type.startswith("QLinear"))
    return dict(sorted(counts.items()))


def initializer_bytes(model: onnx.ModelProto) -> dict[str, int]:
    """Bytes of initializers (subgraphs included) by dtype."""

    sizes: Counter = Counter()
    for graph, _ in graphs(model.graph):
        for t in graph.initializer:
            sizes[_dtype(t)] += len(t.raw_data) if t.HasField("raw_data") else onnx.numpy_helper.to_array(t).nbytes
    return dict(sorted(sizes.items()))


def summarize(after: onnx.ModelProto, mode: str, op_types: tuple[str, ...], excluded: tuple[str, ...]
              ) -> dict[str, Any]:
    """Quantized and still-float weight nodes, by op type; `float_targeted` lists the nodes the mode meant to
    quantize that kept fp32 weights."""
    found = census(after)
    kept = "float16" if mode == "fp16" else None
    quantized: Counter = Counter()
    for dtype, by_op in found.items():
        if (kept and dtype == kept) or (not kept and dtype not in ("float32", "float16", "float64", "bfloat16")):
            for op, names in by_op.items():
                quantized[f"{op} {dtype}"] += len(names)
    float_nodes = found.get("float32", {})
    targeted = [] if mode == "fp16" else [
        name for op, names in float_nodes.items() if op in op_types for name in names if name not in excluded]
    return {
        "quantized": dict(sorted(quantized.items())),
        "quantized_total": sum(quantized.values()),
        "float": {op: len(names) for op, names in sorted(float_nodes.items())},
        "float_targeted": sorted(targeted),
        "ops": quant_ops(after),
    }
