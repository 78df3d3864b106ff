"""Pruning on the ONNX graph: channels and neurons removed for real (`channels`), or weights zeroed
(`unstructured`).

    from edgepack.packager.prune import PruneOptions, prune_model
    result = prune_model(model, PruneOptions(ratio=0.3, reconstruct=True), samples)
    result.model      # a smaller onnx.ModelProto
    result.report     # parameters and FLOPs before/after, per layer, what was left alone and why

`prune_model` takes and returns a ModelProto, so it composes with the other packager steps (quantization
runs on its result). The analysis (analysis.py) walks the graph with one rule per op family (rules/), which
label channels and unite those that must go together (labels.py); importance.py scores the units,
select.py picks them, rewrite.py slices the initializers, reconstruct.py refits the layers that lost
inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np
import onnx

from edgepack.runtime.errors import OptionError

from ..dims import current_shapes
from ..progress import phase
from .analysis import Dependencies, analyse
from .cost import compare
from .graph import prepare
from .importance import scores as unit_scores
from .options import PruneOptions
from .probe import channel_means
from .reconstruct import reconstruct
from .rules import lookup
from .rules.registry import unknown
from .rewrite import rewrite
from .select import choose, groups
from .unstructured import count_zeros, magnitude_prune
from .rewrite_check import check_runs, fidelity


@dataclass
class PruneResult:
    """The pruned model, its report, and (channels) the kept positions of every tensor that shrank."""

    model: onnx.ModelProto
    report: dict[str, Any]
    kept: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)  # tensor -> (axis, kept positions)


def prune_model(model: onnx.ModelProto, options: PruneOptions | str,
                samples: Sequence[dict[str, np.ndarray]] | None = None) -> PruneResult:
    """Prune `model` (not modified) as `options` say; `samples` are calibration feeds (one dict each)."""
    if isinstance(options, str):
        options = PruneOptions.parse(options)
    samples = list(samples) if samples is not None else None
    if options.needs_samples and not samples:
        need = "--reconstruct" if options.reconstruct else "--prune-criterion activation"
        raise OptionError(f"{need} needs calibration data: give --calibration DATA (an .npz of inputs keyed by "
                          "input name, or a folder of .npz feeds)")
    prepared = prepare(model)
    report: dict[str, Any] = {"method": options.method, "ratio": options.ratio, "scope": options.scope,
                              "criterion": options.criterion, "reconstruct": options.reconstruct,
                              "round_to": options.round_to}
    kept: dict[str, tuple[int, np.ndarray]] = {}
    if options.method == "unstructured":
        pruned, report["zeroed"] = magnitude_prune(prepared, options, samples)
        report["zeros"] = {"before": count_zeros(prepared), "after": count_zeros(pruned)}
    else:
        pruned, kept = _channels(prepared, options, samples, report)
    check_runs(prepared, pruned, samples[0] if samples else None)
    shapes = {k: v.shape for k, v in samples[0].items()} if samples else current_shapes()
    report.update(compare(model, prepared, pruned, shapes))
    if samples:
        report["fidelity"] = fidelity(prepared, pruned, samples)
    why = _not_pruned(report)
    if why:
        inside = subgraph_params(prepared.graph)
        if inside:   # a voice-activity detector's weights in an If: say so, not only "no weight was zeroed"
            why += (f"; {inside:,} of the {report['params']['before']:,} parameters are in If/Loop/Scan "
                    "subgraphs, which pruning does not read")
        report["not_pruned"] = why
    return PruneResult(pruned, report, kept)


def subgraph_params(graph: onnx.GraphProto, nested: bool = False) -> int:
    """Elements of the constant tensors (initializers, Constant nodes) inside the subgraphs of `graph`'s nodes."""
    total = 0
    if nested:
        total += sum(int(np.prod(t.dims)) for t in graph.initializer)
        total += sum(int(np.prod(a.t.dims)) for n in graph.node if n.op_type == "Constant"
                     for a in n.attribute if a.type == onnx.AttributeProto.TENSOR)
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                      list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                total += subgraph_params(g, nested=True)
    return total


def _not_pruned(report: dict[str, Any]) -> str | None:
    """Why pruning removed nothing, or None when it removed something: said, not left to `params 0 -> 0`."""
    if not report["params"]["before"]:
        return "the model has no weights to prune"
    units = report.get("units")
    if units is not None and not units["removed"]:
        if not units["prunable"]:
            return "no layer has channels that channel pruning can remove"
        return f"the ratio {report['ratio']:g} removes none of the {units['prunable']:,} prunable channels"
    if "zeros" in report and report["zeros"]["after"] == report["zeros"]["before"]:
        return "no weight was zeroed"
    return None


def _channels(prepared: onnx.ModelProto, options: PruneOptions, samples, report: dict[str, Any]):
    with phase("pruning: analysing the graph") as bar:
        deps = analyse(prepared)
        means = None
        if options.criterion == "activation":
            means = channel_means(prepared, {r.input: (r.track.axis, r.track.rank) for r in deps.readers}, samples)
        scores = unit_scores(deps, options.criterion, means)
        removed = choose(deps, scores, options)
        pruned, keep = rewrite(deps, removed)
        bar.summary = f"{len(removed)} channels removed"
    report["units"] = {"prunable": sum(len(g.prunable) for g in groups(deps)), "removed": len(removed)}
    report["left_alone"] = left_alone(deps)
    report["no_rule"] = without_rule(prepared)
    if options.reconstruct:
        with phase("pruning: refitting the layers whose inputs shrank") as bar:
            report["refits"] = reconstruct(prepared, pruned, deps, keep, samples, options.ridge)
            bar.summary = f"{sum(1 for r in report['refits'] if r.get('refit'))} layers refitted"
    kept = {}
    for name, t in deps.tracks.items():
        mask = keep(t.labels)
        if not mask.all():
            kept[name] = (t.axis, np.flatnonzero(mask))
    return pruned, kept


def without_rule(model: onnx.ModelProto) -> dict[str, int]:
    """Weights (float initializers of 2 dimensions or more, in parameters) read by ops that have no pruning
    rule, by op type: a GRU's or LSTM's weights, a custom op's. Channel pruning leaves them as they are."""
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, int] = {}
    for node in model.graph.node:
        if lookup(node) is not unknown:
            continue
        size = sum(int(np.prod(inits[i].dims)) for i in node.input if i in inits
                   and len(inits[i].dims) >= 2 and inits[i].data_type == onnx.TensorProto.FLOAT)
        if size:
            where = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            out[where] = out.get(where, 0) + size
    return out


def left_alone(deps: Dependencies) -> list[dict[str, Any]]:
    """Layers with channels the analysis could not prove safe to remove, and the first reason why."""
    out = []
    labels = {layer.node: layer.labels for layer in deps.layers}
    for g in groups(deps):
        roots = deps.labels.roots(labels[g.layers[0]])
        blocked = [r for r in roots.tolist() if r in deps.blocked]
        if blocked:
            out.append({"layers": g.layers, "channels": len(blocked), "of": len(roots),
                        "reason": deps.blocked[blocked[0]]})
    return out


__all__ = ["PruneOptions", "PruneResult", "prune_model"]
