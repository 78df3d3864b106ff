"""fp16: half-precision weights and compute, for GPU targets.

Inputs and outputs stay fp32 (callers keep feeding what they fed). What would overflow fp16 stays fp32: nodes
reading weights beyond fp16's range, and, when samples are given, nodes producing or reading activations
that reach half of fp16's maximum on them (half, because the fp16 computation of a value near the limit
may round past it). Nodes this machine's onnxruntime has no fp16 kernel for also stay fp32, so the result
can be checked here.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.text import clip

from .. import modelfiles
from ..datasets import Samples
from ..graphwalk import graphs, subgraphs

FP16_MAX = float(np.finfo(np.float16).max)
RISK = FP16_MAX / 2
_NO_KERNEL = re.compile(r"Could not find an implementation for .*? node with name '([^']*)'")


def overflowing_weights(model: onnx.ModelProto) -> set[str]:
    """Nodes (main graph) that read a float32 initializer with values beyond fp16's range."""
    big = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
           and numpy_helper.to_array(t).size and np.abs(numpy_helper.to_array(t)).max() > FP16_MAX}
    return {n.name for n in model.graph.node if big & set(n.input)}


def activation_peaks(model: onnx.ModelProto, samples: Samples, folder: str) -> dict[str, float]:
    """The largest magnitude each float tensor of the main graph reaches on `samples`."""
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {v.name for v in [*inferred.graph.value_info, *inferred.graph.output]
              if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for out in node.output:
            if out in floats and out not in known:
                probe.graph.output.append(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
                known.add(out)
    session = modelfiles.session(probe, folder, "fp16_probe.onnx", level="basic")
    names = [o.name for o in session.get_outputs()]
    peaks: dict[str, float] = {}
    for feeds in samples:
        for name, value in zip(names, session.run(None, feeds)):
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
                peaks[name] = max(peaks.get(name, 0.0), float(np.abs(value[np.isfinite(value)]).max(initial=0)))
    return peaks


def overflowing_activations(model: onnx.ModelProto, peaks: dict[str, float]) -> set[str]:
    """Nodes that produce or read a tensor at risk in fp16: both keep fp32 (a consumer would cast it back)."""
    risky = {name for name, peak in peaks.items() if peak > RISK}
    return {n.name for n in model.graph.node if risky & (set(n.output) | set(n.input))}


def _toposort(graph: onnx.GraphProto) -> None:
    """Put the nodes back in topological order, which ONNX requires and the converter does not keep (it
    appends its Casts at the end). Names produced by no node of the graph come from outside: available."""
    produced = {o for n in graph.node for o in n.output}
    ready = {name for n in graph.node for name in n.input if name not in produced}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready or not i for i in n.input)]
        if len(rest) == len(pending):
            return  # a cycle or a name from a subgraph's scope: leave the order as it was
        for n in pending:
            if n not in rest:
                ordered.append(n)
                ready.update(n.output)
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _cast_to(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), 0) if node.op_type == "Cast" else 0


def _drop_round_trips(graph: onnx.GraphProto) -> int:
    """Between two nodes kept in fp32 the converter still inserts Cast(fp16) then Cast(fp32): the value is
    squeezed through fp16 and overflows there, the very thing keeping the nodes in fp32 was to avoid. Read the
    fp32 value directly instead; a Cast left without readers goes."""
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    in_subgraphs = {i for n in graph.node for g in subgraphs(n) for sub, _ in graphs(g) for m in sub.node
                    for i in m.input}
    dropped = 0
    for node in graph.node:
        first = producer.get(node.input[0]) if _cast_to(node) == onnx.TensorProto.FLOAT else None
        if first is None or _cast_to(first) != onnx.TensorProto.FLOAT16 or node.output[0] in outputs | in_subgraphs:
            continue
        for reader in graph.node:
            for k, name in enumerate(reader.input):
                if name == node.output[0]:
                    reader.input[k] = first.input[0]
        dropped += 1
    while True:  # remove Casts nobody reads any more (the second of each pair, then maybe the first)
        read = {i for n in graph.node for i in n.input} | outputs | in_subgraphs
        unread = [n for n in graph.node if n.op_type == "Cast" and n.output[0] not in read]
        if not unread:
            return dropped
        for n in unread:
            graph.node.remove(n)


def _convert(model: onnx.ModelProto, blocked: set[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    with modelfiles.quiet():
        converted = convert_float_to_float16(copy, keep_io_types=True, node_block_list=sorted(blocked))
    for graph, _ in graphs(converted.graph):
        _drop_round_trips(graph)
        _toposort(graph)
    return converted


def quantize(model: onnx.ModelProto, samples: Samples | None, folder: str) -> tuple[onnx.ModelProto, dict[str, Any]]:
    weight_nodes = overflowing_weights(model)
    act_nodes = overflowing_activations(model, activation_peaks(model, samples, folder)) if samples else set()
    blocked = weight_nodes | act_nodes
    no_kernel: list[str] = []
    for _ in range(64):  # each round keeps one more node without an fp16 kernel here in fp32
        converted = _convert(model, blocked)
        try:
            modelfiles.session(converted, folder, "fp16_check.onnx", level="basic")  # kernels, not optimizer bugs
            break
        except Exception as e:
            match = _NO_KERNEL.search(str(e))
            if not match or match.group(1) in blocked:
                raise QuantizationError(f"the fp16 model does not load in onnxruntime: "
                                        f"{clip(str(e).splitlines()[0], 300)}") from None
            no_kernel.append(match.group(1))
            blocked.add(match.group(1))
    else:
        raise QuantizationError("the fp16 model does not load in onnxruntime: too many nodes lack fp16 kernels")
    details = {"fp32_nodes": {"weights_overflow": sorted(weight_nodes), "activations_overflow": sorted(act_nodes),
                              "no_fp16_kernel": no_kernel},
               "activations_checked": samples is not None}
    return converted, details
