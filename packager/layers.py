"""Size per layer, before and after packaging, recorded at package time for `edgepack report`.

A layer is a node of the source model that reads constant tensors (weights, biases, tables). Nodes are
matched by name: package() names the source's unnamed nodes once, before pruning or quantization
(`named_copy`), so that every later step keeps those names. For each layer the record holds the bytes of
the tensors it reads in the source, the bytes of those it reads in the packaged model (through a
DequantizeLinear too: the integer weight, its scales and zero points), the main weight's type, and the
names of the packaged tensors, whose coded sizes the bundle's manifest gives. A layer that no longer exists
(a BatchNormalization folded into its Conv, a node pruned away) has no packaged figures.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import NodeProto, TensorProto, helper

from .graphwalk import Scope, scoped
from .quantize.prepare import name_nodes


def named_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose unnamed nodes have the names quantization would give them."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    name_nodes(copy)
    return copy


def _bytes(t: TensorProto) -> int:
    if t.HasField("raw_data"):
        return len(t.raw_data)
    return onnx.numpy_helper.to_array(t).nbytes


def _dtype(t: TensorProto) -> str:
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
        return "int4" if t.data_type == TensorProto.INT4 else "uint4"
    return str(helper.tensor_dtype_to_np_dtype(t.data_type))


def _constants(node: NodeProto, scope: Scope) -> list[TensorProto]:
    """The initializers `node` reads, directly or through a DequantizeLinear of a quantized initializer (not
    of an activation: its scale belongs to the node that produced it)."""
    found = []
    for name in node.input:
        source = scope.get(name)
        if isinstance(source, TensorProto):
            found.append(source)
        elif isinstance(source, NodeProto) and source.op_type == "DequantizeLinear" \
                and isinstance(scope.get(source.input[0]), TensorProto):
            found += [scope[i] for i in source.input if isinstance(scope.get(i), TensorProto)]
    return found


def _layers(model: onnx.ModelProto) -> dict[str, tuple[str, list[TensorProto]]]:
    out = {}
    for node, scope, _ in scoped(model):
        if node.op_type in ("DequantizeLinear", "QuantizeLinear", "Constant"):
            continue
        tensors = _constants(node, scope)
        if any(len(t.dims) >= 1 and _bytes(t) >= 64 for t in tensors):
            out[node.name] = (node.op_type, tensors)
    return out


def layer_sizes(source: onnx.ModelProto, packaged: onnx.ModelProto) -> list[dict[str, Any]]:
    """One record per layer of `source` (named as named_copy names it), in graph order."""
    after = _layers(packaged)
    rows = []
    for name, (op, tensors) in _layers(source).items():
        row: dict[str, Any] = {"node": name, "op": op, "source_bytes": sum(_bytes(t) for t in tensors)}
        match = after.get(name) or after.get(f"{name}_quant")
        if match is not None:
            p_op, p_tensors = match
            main = max(p_tensors, key=_bytes)
            row.update(packaged_op=p_op, bytes=sum(_bytes(t) for t in p_tensors), dtype=_dtype(main),
                       tensors=sorted({t.name for t in p_tensors}))
        rows.append(row)
    return rows
