"""Graph preparation: the rewrites without which onnxruntime's quantizers silently quantize nothing.

Measured on real models (/work/shared/notes/quantization-facts.md):
* weights held in `Constant` nodes are skipped by quantize_static (Q/DQ on activations only, the file grows)
  and refused by quantize_dynamic; as initializers they quantize;
* weights inside If/Loop branches are quantized only once they are initializers of the branch itself, not
  Constants and not tensors captured from the outer scope;
* per-channel QDQ on an opset 11/12 model writes a model onnxruntime refuses (per-axis DequantizeLinear
  needs opset 13);
* MatMulNBits quantizes MatMul only, while exporters write linear layers on 2-D inputs as Gemm.

Each function changes the model in place and returns how many things it changed, for the report.
"""

from __future__ import annotations

import os

import onnx
from onnx import GraphProto, helper, numpy_helper

from edgepack.runtime.errors import ModelError
from edgepack.runtime.text import clip

from ..graphwalk import FLOAT_TYPES, WEIGHT_INPUTS, graphs, opset, scoped, subgraphs


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn every `Constant` node holding a tensor (`value`) into an initializer of its own graph."""
    moved = 0
    for graph, _ in graphs(model.graph):
        keep = []
        for node in graph.node:
            value = next((a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR),
                         None)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None:
                tensor = onnx.TensorProto()
                tensor.CopyFrom(value)
                tensor.name = node.output[0]
                graph.initializer.append(tensor)
                moved += 1
            else:
                keep.append(node)
        if len(keep) != len(graph.node):
            del graph.node[:]
            graph.node.extend(keep)
    return moved


def _uses(graph: GraphProto, names: set[str], found: dict[str, set[int]], owners: dict, top: bool) -> None:
    """Record, for each outer name in `names`, which graphs read it (by id), honouring shadowing."""
    local = {t.name for t in graph.initializer} | {i.name for i in graph.input} | \
        {o for n in graph.node for o in n.output}
    visible = names if top else names - local
    owners[id(graph)] = graph
    read = [name for node in graph.node for name in node.input] + [o.name for o in graph.output]
    for name in read:
        if name in visible:
            found.setdefault(name, set()).add(id(graph))
    for node in graph.node:
        for sub in subgraphs(node):
            _uses(sub, visible, found, owners, False)


def localize_captured_weights(model: onnx.ModelProto) -> int:
    """Move float weights (2-D and up) that only one subgraph reads from the main graph into that subgraph,
    where the quantizers can see them. Weights shared with the main graph or several subgraphs stay put."""
    main = model.graph
    candidates = {t.name: t for t in main.initializer if t.data_type in FLOAT_TYPES and len(t.dims) >= 2}
    if not candidates or not any(True for n in main.node for _ in subgraphs(n)):
        return 0
    found: dict[str, set[int]] = {}
    owners: dict[int, GraphProto] = {}
    _uses(main, set(candidates), found, owners, True)
    moved = 0
    for name, users in found.items():
        user = next(iter(users))
        if len(users) != 1 or user == id(main):
            continue
        tensor = candidates[name]
        owners[user].initializer.append(tensor)
        main.initializer.remove(tensor)
        moved += 1
    return moved


def name_nodes(model: onnx.ModelProto) -> int:
    """Give every unnamed node a unique name: node lists (exclude, quantize) work by name."""
    taken = {n.name for g, _ in graphs(model.graph) for n in g.node if n.name}
    named = 0
    for graph, _ in graphs(model.graph):
        for i, node in enumerate(graph.node):
            if not node.name:
                base = f"{node.op_type}_{node.output[0] if node.output else i}"
                name, k = base, 1
                while name in taken:
                    k += 1
                    name = f"{base}_{k}"
                node.name = name
                taken.add(name)
                named += 1
    return named


def raise_opset(model: onnx.ModelProto, version: int, needed_by: str, otherwise: str) -> onnx.ModelProto:
    """The model converted to at least `version` of the default opset (onnx.version_converter)."""
    current = opset(model)
    if current >= version:
        return model
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, version)
    except Exception as e:
        raise ModelError(f"cannot convert the model from opset {current} to {version}, which {needed_by} "
                         f"needs ({clip(str(e).splitlines()[0], 200)}); re-export it at opset {version} or later, "
                         f"or {otherwise}") from None
    return converted


def computed_weights(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """Targeted nodes whose weight is computed from constants (Transpose, Cast, Reshape of an initializer):
    no quantizer sees it as a weight until it is folded."""
    found = []
    for node, scope, _ in scoped(model):
        if node.op_type not in op_types:
            continue
        for idx in WEIGHT_INPUTS.get(node.op_type, ()):
            producer = scope.get(node.input[idx]) if idx < len(node.input) else None
            if isinstance(producer, onnx.NodeProto) and producer.input and producer.op_type != "DequantizeLinear" \
                    and all(isinstance(scope.get(i), onnx.TensorProto) for i in producer.input if i):
                found.append(node.name)
    return found


def conv_batchnorms(model: onnx.ModelProto) -> list[str]:
    """BatchNormalization nodes right after a Conv: folded into the Conv's weights, they quantize with it."""
    return [n.name for n, scope, _ in scoped(model) if n.op_type == "BatchNormalization"
            and isinstance(scope.get(n.input[0]), onnx.NodeProto) and scope[n.input[0]].op_type == "Conv"]


def fold_constants(model: onnx.ModelProto, folder: str) -> onnx.ModelProto:
    """onnxruntime's basic (standard-op, provider-independent) graph optimizations: constant folding,
    Conv+BatchNormalization fusion, redundant node removal. Run in `folder`, read back."""
    import onnxruntime as ort

    from .. import modelfiles

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = os.path.join(folder, "folded.onnx")
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "folded.onnx.data")
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    options.log_severity_level = 3
    ort.InferenceSession(modelfiles.save(model, folder, "unfolded.onnx"), options, providers=["CPUExecutionProvider"])
    folded = modelfiles.load(options.optimized_model_filepath)
    return folded


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm(A, W const[, C]) with alpha 1 and no transA as MatMul(A, W or W^T) [+ Add C], which the
    4-bit quantizer handles. Gemm with other attributes, or a non-constant W, stays as it is."""
    rewritten = 0
    for graph, _ in graphs(model.graph):
        inits = {t.name: t for t in graph.initializer}
        readers: dict[str, int] = {}
        for g, _ in graphs(graph):
            for n in g.node:
                for name in n.input:
                    readers[name] = readers.get(name, 0) + 1
        new_nodes = []
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            w = inits.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
            beta_ok = attrs.get("beta", 1.0) == 1.0 or len(node.input) < 3 or not node.input[2]
            if w is None or attrs.get("alpha", 1.0) != 1.0 or attrs.get("transA", 0) or not beta_ok \
                    or w.data_type not in FLOAT_TYPES:
                new_nodes.append(node)
                continue
            b_name = w.name
            if attrs.get("transB", 0):
                b_name = f"{w.name}_transposed"
                graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(w).T.copy(), b_name))
                if readers.get(w.name, 0) <= 1:
                    graph.initializer.remove(w)
            has_c = len(node.input) > 2 and node.input[2]
            out = f"{node.output[0]}_matmul" if has_c else node.output[0]
            new_nodes.append(helper.make_node("MatMul", [node.input[0], b_name], [out], name=node.name))
            if has_c:
                new_nodes.append(helper.make_node("Add", [out, node.input[2]], [node.output[0]],
                                                  name=f"{node.name}_bias"))
            rewritten += 1
        if rewritten:
            del graph.node[:]
            graph.node.extend(new_nodes)
    return rewritten
