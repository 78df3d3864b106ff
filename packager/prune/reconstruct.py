"""--reconstruct: refit, in graph order, every layer whose input channels were removed.

Layers are refit in waves: a wave holds layers none of which lies downstream of another, so one pass over
the calibration data serves the whole wave, and each later wave sees the activations of the already refit
layers before it (errors upstream are compensated downstream). Each wave runs the original model for the
targets and the pruned model for the inputs, on every calibration sample.
"""

from __future__ import annotations

from typing import Any, cast
from collections.abc import Sequence

import numpy as np
import onnx

from .analysis import Dependencies
from .context import Keep, Reader
from .graph import GraphView, attr
from .patches import ConvGeometry
from .probe import Probe, run_together
from .refit import MAX_ROWS, ConvFit, Fit, LinearFit, Normal


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _per_neuron(model: onnx.ModelProto, name: str) -> bool:
    dims = next((list(t.dims) for t in model.graph.initializer if t.name == name), None)
    return dims is not None and bool(dims) and all(d == 1 for d in dims[:-1])


def _matmul_bias(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[onnx.NodeProto, int] | None:
    """Where a MatMul's intercept can go: the per-neuron constant of an Add that alone reads its output."""
    readers = [n for n in model.graph.node if node.output[0] in n.input]
    if len(readers) != 1 or readers[0].op_type != "Add" or len(readers[0].input) != 2:
        return None
    add = readers[0]
    i = 1 - list(add.input).index(node.output[0])
    return (add, i) if _per_neuron(model, add.input[i]) else None


def _fit_for(model: onnx.ModelProto, reader: Reader, view: GraphView) -> Fit | str:
    """The refit of one reader in the pruned model, or why it is not refit."""
    node = _node(model, reader.node)
    if node.op_type == "Conv":
        w_shape = view.shape(node.input[1])
        assert w_shape is not None  # a reader's weight is an initializer, whose dims are always known
        x_shape = view.shape(node.input[0])
        # initializer dims are ints; the input's spatial dims are passed on as inferred, as before
        kernel = cast("tuple[int, ...]", tuple(w_shape[2:]))
        spatial = cast("tuple[int, ...]", tuple(x_shape[2:])) if x_shape else ()
        geo = ConvGeometry.of(node, kernel, spatial)
        return ConvFit(model, node, geo) if geo is not None else "3-D convolutions are not refit"
    if node.op_type == "Gemm":
        beta = float(attr(node, "beta", 1.0))
        has_c = len(node.input) > 2 and bool(node.input[2])
        ok = beta != 0 and (not has_c or _per_neuron(model, node.input[2]))
        return LinearFit(model, node, (node, 2) if ok else None, beta if has_c else 1.0)
    if node.op_type == "MatMul":
        return LinearFit(model, node, _matmul_bias(model, node))
    return f"{node.op_type} layers are not refit"


def _waves(model: onnx.ModelProto, names: list[str]) -> list[list[str]]:
    """Split `names` (in graph order) into waves: no node of a wave is downstream of another of it."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    waves: list[list[str]] = []
    downstream: set[str] = set()
    for name in names:
        if not waves or name in downstream:
            waves.append([])
            downstream = set()
        waves[-1].append(name)
        stack = list(_node(model, name).output)
        while stack:
            for c in consumers.get(stack.pop(), []):
                if c.name not in downstream:
                    downstream.add(c.name)
                    stack.extend(c.output)
    return waves


def reconstruct(original: onnx.ModelProto, pruned: onnx.ModelProto, deps: Dependencies, keep: Keep,
                samples: Sequence[dict[str, np.ndarray]], ridge: float, seed: int = 0) -> list[dict[str, Any]]:
    """Refit `pruned` in place; returns one report entry per reader whose inputs shrank."""
    order = {n.name: i for i, n in enumerate(deps.model.graph.node)}
    readers = sorted((r for r in deps.readers if not keep(r.track.labels).all()), key=lambda r: order[r.node])
    out_masks = {layer.node: keep(layer.labels) for layer in deps.layers}
    report: list[dict[str, Any]] = []
    by_name = {r.node: r for r in readers}
    budget = max(1, MAX_ROWS // max(len(samples), 1))
    for wave in _waves(pruned, [r.node for r in readers]):
        view = GraphView(pruned)
        fits: dict[str, Fit] = {}
        for name in wave:
            fit = _fit_for(pruned, by_name[name], view)
            if isinstance(fit, str):
                report.append({"layer": name, "refit": False, "why": fit})
            else:
                fits[name] = fit
        if not fits:
            continue
        original_probe = Probe(original, [fit.target for fit in fits.values()])
        pruned_probe = Probe(pruned, [by_name[n].input for n in fits])
        normals = _accumulate(fits, by_name, original_probe, pruned_probe, out_masks, samples, budget, seed)
        for name, fit in fits.items():
            theta0 = fit.theta0()
            theta = normals[name].solve(theta0, ridge, fit.intercept)
            before, after = normals[name].error(theta0), normals[name].error(theta)
            if after < before:
                fit.write(theta)
            report.append({"layer": name, "refit": after < before, "error_before": round(before, 6),
                           "error_after": round(min(after, before), 6)})
    return report


def _accumulate(fits, by_name, original_probe, pruned_probe, out_masks, samples, budget, seed):
    normals: dict[str, Normal] = {}
    rng = np.random.default_rng(seed)
    for targets, inputs in run_together([original_probe, pruned_probe], samples):
        for name, fit in fits.items():
            y = targets[fit.target]
            mask = out_masks.get(name)
            if mask is not None:
                y = np.compress(mask, y, axis=1 if fit.__class__ is ConvFit else y.ndim - 1)
            for x_rows, y_rows in fit.rows(inputs[by_name[name].input], y, budget, rng):
                if name not in normals:
                    normals[name] = Normal.zeros(x_rows.shape[1], y_rows.shape[1])
                normals[name].add(x_rows, y_rows)
    return normals
