"""One model the search quantizes many ways: the original, or the original pruned at one ratio, prepared for
quantization and calibrated once; `build` makes the model of one recipe (which nodes stay in float) from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx import helper

from .. import modelfiles as files
from ..graphwalk import FLOAT_TYPES, graphs, nodes, weights
from ..pipeline import StepResult
from ..prune import step as prune_mod
from ..prune.options import PruneOptions
from ..quantize.options import QuantizeOptions, supported_op_types
from ..quantize.run import Prepared, Quantized, prepare_once, quantize_prepared
from ..report_keys import PRUNE

# The modes whose quantizers take a list of nodes to leave in float (fp16 converts the whole graph).
PER_NODE_MODES = ("int8-static", "int8-dynamic", "int4-weight")
# float_nodes of the recipe that quantizes nothing, for a mode without per-node control
ALL = ("*",)


@dataclass
class Bench:
    ratio: float                          # channels pruned (0: not pruned)
    model: onnx.ModelProto                # the float model at that ratio
    prune: StepResult | None              # the prune step's result, when pruned
    opts: QuantizeOptions | None          # the most aggressive quantization; None: mode "none"
    prepared: Prepared | None
    candidates: list[str]                 # nodes that recipe quantizes and the search may keep in float
    node_weights: dict[str, int]          # fp32 weight bytes of each candidate (0: no weight)
    weight_bytes: int                     # float weight bytes (tensors of 2 dims and more) of the prepared model


def widest(opts: QuantizeOptions, model: onnx.ModelProto, widen: bool) -> QuantizeOptions:
    """The most aggressive recipe of `opts`' mode: with `widen`, every op type of the model its quantizer
    supports (else the op types `opts` names); nodes left in float are a warning rather than an error."""
    if opts.mode not in PER_NODE_MODES or not widen:
        return dataclasses.replace(opts, allow_unquantized=True)
    present = {n.op_type for n, _ in nodes(model)}
    op_types = tuple(sorted(present & supported_op_types(opts.mode)))
    return dataclasses.replace(opts, op_types=op_types or opts.op_types, allow_unquantized=True)


def _stored_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Initializers and Constant nodes' tensors, subgraphs included: where exporters store weights."""
    for graph, _ in graphs(model.graph):
        yield from graph.initializer
        for node in graph.node:
            if node.op_type == "Constant":
                yield from (a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR)


def float_weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of float tensors with 2 dimensions or more (weights; biases and scales excluded), initializers
    and Constant nodes alike."""
    total = 0
    for t in _stored_tensors(model):
        if t.data_type in FLOAT_TYPES and len(t.dims) >= 2:
            total += int(np.prod(t.dims)) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


def make_bench(source: onnx.ModelProto, ratio: float, prune: PruneOptions | None, calibration: str | None,
               opts: QuantizeOptions | None, widen: bool, folder: str,
               progress: Callable[[int, int], None] | None, prepared: Prepared | None = None) -> Bench:
    """Prune `source` at `ratio` (none at 0), prepare it for `opts` and calibrate it once (`prepared`: done
    already, for the unpruned model, by the recipe choice)."""
    model, pruned = source, None
    if ratio > 0 and prune is not None:
        model, step, report = prune_mod.prune_step(source, dataclasses.replace(prune, ratio=ratio), calibration)
        pruned = StepResult(model, step, {PRUNE: report})
    if opts is None:
        return Bench(ratio, model, pruned, None, None, [], {}, float_weight_bytes(model))
    opts = widest(opts, model, widen)
    sub = os.path.join(folder, f"bench-{ratio:.4f}")
    os.makedirs(sub, exist_ok=True)
    prepared = prepared or prepare_once(model, opts, sub, progress)
    candidates = [] if opts.mode not in PER_NODE_MODES else [
        n.name for n, _ in nodes(prepared.model) if n.op_type in (opts.op_types or ()) and n.name not in
        opts.exclude_nodes]
    node_weights = dict.fromkeys(candidates, 0)
    for node, tensor, _ in weights(prepared.model):
        if node.name in node_weights and tensor.data_type in FLOAT_TYPES:
            node_weights[node.name] += int(np.prod(tensor.dims)) * \
                helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return Bench(ratio, model, pruned, opts, prepared, candidates, node_weights, float_weight_bytes(prepared.model))


def recipe_opts(bench: Bench, float_nodes: tuple[str, ...]) -> QuantizeOptions | None:
    """The quantization options of the recipe that keeps `float_nodes` in float (ALL: everything); None:
    nothing quantized."""
    if bench.opts is None or float_nodes == ALL or (bench.candidates and set(bench.candidates) <= set(float_nodes)):
        return None
    if bench.opts.mode not in PER_NODE_MODES:
        return bench.opts
    kept = tuple(n for n in bench.candidates if n in set(float_nodes))
    return dataclasses.replace(bench.opts, exclude_nodes=tuple(bench.opts.exclude_nodes) + kept)


def all_float(bench: Bench) -> tuple[str, ...]:
    """float_nodes of the recipe that quantizes nothing."""
    return tuple(bench.candidates) if bench.candidates else ALL


def build(bench: Bench, float_nodes: tuple[str, ...]) -> tuple[onnx.ModelProto, Quantized | None]:
    """The model of the recipe keeping `float_nodes` in float, and what the quantizer did (None: float)."""
    opts = recipe_opts(bench, float_nodes)
    if opts is None or bench.prepared is None:
        return bench.model, None
    with files.workdir() as folder:
        model, details, summary = quantize_prepared(bench.prepared, opts, folder)
    return model, Quantized(model, details, summary)


def quantized_fraction(bench: Bench, model: onnx.ModelProto) -> float:
    """The share of the weight bytes no longer stored in float32 (quantized, or fp16)."""
    if not bench.weight_bytes:
        return 0.0
    left = sum(int(np.prod(t.dims)) * 4 for t in _stored_tensors(model)
               if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) >= 2)  # a float trial keeps Constants
    return max(0.0, 1.0 - left / bench.weight_bytes)
