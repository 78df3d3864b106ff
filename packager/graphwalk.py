"""Walking an ONNX graph and its subgraphs (If branches, Loop and Scan bodies), and finding weights in scope."""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)

# Which inputs of an op hold its weights, for the ops quantizers change.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1,), "ConvTranspose": (1,), "MatMul": (1,), "Gemm": (1,), "Gather": (0,),
    "LSTM": (1, 2), "GRU": (1, 2), "RNN": (1, 2), "Attention": (1,), "EmbedLayerNormalization": (2, 3, 4),
}


# The same for the quantized ops that replace them (QOperator format, dynamic and 4-bit).
QUANTIZED_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "QLinearConv": (3,), "QLinearMatMul": (3,), "ConvInteger": (1,), "MatMulInteger": (1,), "QGemm": (3,),
    "MatMulNBits": (1,), "GatherBlockQuantized": (0,), "DynamicQuantizeMatMul": (1,),
    "MatMulIntegerToFloat": (1,), "DynamicQuantizeLSTM": (1, 2), "QAttention": (1,),
}


def subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def graphs(graph: GraphProto, depth: int = 0) -> Iterator[tuple[GraphProto, int]]:
    """`graph` and every graph nested in it, with its depth (0 for `graph`)."""
    yield graph, depth
    for node in graph.node:
        for sub in subgraphs(node):
            yield from graphs(sub, depth + 1)


def nodes(model: onnx.ModelProto) -> Iterator[tuple[NodeProto, int]]:
    """Every node of the model, subgraphs included, with the depth of the graph that holds it."""
    for graph, depth in graphs(model.graph):
        for node in graph.node:
            yield node, depth


Scope = dict[str, "TensorProto | NodeProto"]


def scoped(model: onnx.ModelProto) -> Iterator[tuple[NodeProto, Scope, int]]:
    """(node, scope, depth) for every node, subgraphs included; `scope` maps each name visible to the node to
    the initializer or the node that defines it (graph inputs shadow outer names and map to nothing)."""
    def visit(graph: GraphProto, outer: Scope, depth: int):
        scope: Scope = {k: v for k, v in outer.items()}
        for value in graph.input:
            scope.pop(value.name, None)
        scope.update({t.name: t for t in graph.initializer})
        scope.update({o: n for n in graph.node for o in n.output})
        for node in graph.node:
            yield node, scope, depth
            for sub in subgraphs(node):
                yield from visit(sub, scope, depth + 1)

    yield from visit(model.graph, {}, 0)


def weights(model: onnx.ModelProto) -> Iterator[tuple[NodeProto, TensorProto, int]]:
    """(node, weight initializer, depth) for each weight input of a known float op that is an initializer in
    scope (its own graph's or an enclosing graph's), at least 2-D: the tensors quantization is about."""
    for node, scope, depth in scoped(model):
        for idx in WEIGHT_INPUTS.get(node.op_type, ()):
            tensor = scope.get(node.input[idx]) if idx < len(node.input) else None
            if isinstance(tensor, TensorProto) and len(tensor.dims) >= 2:
                yield node, tensor, depth


def opset(model: onnx.ModelProto, domain: str = "") -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and domain == "" or entry.domain == domain:
            return entry.version
    return 0
