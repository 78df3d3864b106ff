"""A cheap sensitivity signal, computed once: every candidate node's own error under fake quantization.

One probe model holds, beside each candidate node, a copy of it whose weights are rounded to int8 (per
output channel, symmetric) and, for int8-static, whose activation inputs and output go through
QuantizeLinear/DequantizeLinear with the ranges calibrated once (uint8, asymmetric, as the quantizer does).
One pass over a few eval samples then gives, per node, the error of its output against the float node's and
the error of each quantized input against itself, each as the worst channel's relative error (a channel of
small values that shares one scale with a wide one loses all of its precision, which the tensor's overall
error hides). The node's signal is the largest. Cost: one session and one pass, whatever the number of nodes, instead
of one
quantization and one evaluation per node.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import modelfiles as files
from ..graphwalk import FLOAT_TYPES
from .bench import Bench

SAMPLES = 8
_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": -1, "Gemm": -1}


def _ranges(bench: Bench) -> dict[str, tuple[float, float]]:
    r = bench.prepared.ranges if bench.prepared is not None else None
    if r is None or not r.reused or not r.path:
        return {}
    from onnxruntime.quantization.calibrate import load_tensors_data

    out = {}
    for name, td in load_tensors_data(r.path).data.items():
        low, high = td.range_value
        out[name] = (float(np.min(low)), float(np.max(high)))
    return out


def _fake_weight(w: np.ndarray, axis: int, bits: int) -> np.ndarray:
    """Symmetric rounding per slice along `axis` (per output channel)."""
    top = 2 ** (bits - 1) - 1
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1) if w.ndim > 1 else w.reshape(1, -1)
    scale = np.abs(moved).max(axis=1, keepdims=True) / top
    scale[scale == 0] = 1.0
    q = np.clip(np.round(moved / scale), -top, top) * scale
    if w.ndim <= 1:
        return q.reshape(w.shape).astype(w.dtype)
    shape = (w.shape[axis], *[d for i, d in enumerate(w.shape) if i != axis % w.ndim])
    return np.moveaxis(q.reshape(shape), 0, axis).astype(w.dtype)


def _weight_axis(node: onnx.NodeProto, index: int) -> int:
    if node.op_type == "Gemm" and index == 1:
        trans = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans else -1
    return _AXIS.get(node.op_type, 0)


class _Builder:
    def __init__(self, model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], bits: int,
                 floats: set[str]):
        self.graph = model.graph
        self.ranges, self.bits, self.floats = ranges, bits, floats
        self.inits = {t.name: t for t in self.graph.initializer}
        self.qdq: dict[str, str] = {}
        self.outputs: list[str] = []
        self.existing = {o.name for o in self.graph.output}

    def activation(self, name: str) -> str | None:
        """The name of `name` through Q/DQ with its calibrated range, or None without a range."""
        if name in self.qdq:
            return self.qdq[name]
        if name not in self.ranges:
            return None
        low, high = min(self.ranges[name][0], 0.0), max(self.ranges[name][1], 0.0)
        scale = (high - low) / 255 or 1.0
        zero = int(np.clip(round(-low / scale), 0, 255))
        base = f"{name}__probe"
        self.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), base + "_s"),
                                       numpy_helper.from_array(np.array(zero, np.uint8), base + "_z")])
        self.graph.node.extend([
            helper.make_node("QuantizeLinear", [name, base + "_s", base + "_z"], [base + "_q"], name=base + "_Q"),
            helper.make_node("DequantizeLinear", [base + "_q", base + "_s", base + "_z"], [base + "_dq"],
                             name=base + "_DQ")])
        self.qdq[name] = base + "_dq"
        self.watch(name)
        self.watch(base + "_dq")
        return base + "_dq"

    def watch(self, name: str) -> None:
        if name not in self.outputs:
            self.outputs.append(name)
            if name not in self.existing:
                self.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))

    def copy(self, node: onnx.NodeProto, static: bool) -> dict[str, Any] | None:
        """Add the fake-quantized copy of `node`; what to compare, or None when it cannot be probed."""
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return None
        inputs, pairs = [], []
        for i, name in enumerate(node.input):
            t = self.inits.get(name)
            if t is not None and t.data_type in FLOAT_TYPES and len(t.dims) >= 2:
                w = numpy_helper.to_array(t)
                fake = numpy_helper.from_array(_fake_weight(w, _weight_axis(node, i), self.bits), f"{name}__probe_w")
                self.graph.initializer.append(fake)
                inputs.append(fake.name)
            elif static and name and t is None and (dq := self.activation(name)) is not None:
                inputs.append(dq)
                pairs.append((name, dq))
            else:
                inputs.append(name)
        if inputs == list(node.input) or not node.output or node.output[0] not in self.floats:
            return None
        out = node.output[0]
        copy = helper.make_node(node.op_type, inputs, [f"{out}__probe_out", *[f"{o}__probe_{k}" for k, o in
                                                                              enumerate(node.output[1:])]],
                                name=f"{node.name}__probe", domain=node.domain)
        copy.attribute.extend(node.attribute)
        self.graph.node.append(copy)
        compared = copy.output[0]
        if static and out in self.ranges:   # the quantizer quantizes the output too, with the output's range
            self.ranges[compared] = self.ranges[out]
            compared = self.activation(compared) or compared
        self.watch(out)
        self.watch(compared)
        return {"output": (out, compared), "inputs": pairs}


def _channels(v: np.ndarray) -> np.ndarray:
    """(channels, values) of one sample's tensor: axis 1 of (N, C, ...) images and (N, features) rows, the last
    axis of (N, tokens, features) sequences."""
    v = np.asarray(v, np.float64)
    if v.ndim <= 1:
        return v.reshape(1, -1)
    axis = -1 if v.ndim == 3 else 1
    return np.moveaxis(v, axis, 0).reshape(v.shape[axis], -1)


def _error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The worst channel's relative error |b - a| / |a| (at most 1), over the samples together: one scale for a
    whole tensor can wipe out the channels of small values beside a wide one, while the tensor's overall
    error stays small."""
    try:
        x = np.concatenate([_channels(v) for v in a], axis=1)
        y = np.concatenate([_channels(v) for v in b], axis=1)
    except ValueError:  # shapes that differ between samples
        x = np.concatenate([np.asarray(v, np.float64).ravel() for v in a])[None]
        y = np.concatenate([np.asarray(v, np.float64).ravel() for v in b])[None]
    if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return 1.0
    norms = np.linalg.norm(x, axis=1)
    floor = max(float(norms.max(initial=0.0)) * 1e-3, 1e-12)
    return float(min(1.0, np.max(np.linalg.norm(y - x, axis=1) / np.maximum(norms, floor), initial=0.0)))


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 tensors of the main graph, as shape inference types them."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot read: probe what the graph declares
        inferred = model
    g = inferred.graph
    infos = [*g.value_info, *g.output, *g.input]
    return {v.name for v in infos if v.type.tensor_type.elem_type == TensorProto.FLOAT}


def rank(bench: Bench, samples: Any, limit: int = SAMPLES) -> list[dict[str, Any]]:
    """One entry per candidate, most sensitive first: node, op, weight_bytes, error (None: not probed)."""
    assert bench.prepared is not None and bench.opts is not None
    model = onnx.ModelProto()
    model.CopyFrom(bench.prepared.model)
    static = bench.opts.mode == "int8-static"
    bits = 4 if bench.opts.mode == "int4-weight" else 8
    builder = _Builder(model, _ranges(bench) if static else {}, bits, _float_tensors(model))
    wanted = set(bench.candidates)
    plans = {n.name: builder.copy(n, static) for n in list(model.graph.node) if n.name in wanted}
    with files.workdir() as folder:
        session = files.session(model, folder, "probe.onnx")
        names = [o.name for o in session.get_outputs()]
        valid = set(names)
        seen: dict[str, list[np.ndarray]] = {n: [] for n in builder.outputs if n in valid}
        for feeds in samples.feeds[:limit]:
            for n, v in zip(names, session.run(names, feeds)):
                if n in seen:
                    seen[n].append(np.asarray(v))
    rows = []
    ops = {n.name: n.op_type for n in bench.prepared.model.graph.node}
    for name in bench.candidates:
        plan = plans.get(name)
        row: dict[str, Any] = {"node": name, "op": ops.get(name, "?"), "weight_bytes": bench.node_weights[name]}
        if plan is None or not all(n in seen for n in plan["output"]):
            row["error"] = None
        else:
            errors = [_error(*(seen[n] for n in plan["output"]))]
            errors += [_error(seen[a], seen[b]) for a, b in plan["inputs"] if a in seen and b in seen]
            row["error"] = float(f"{max(errors):.6g}")
        rows.append(row)
    position = {name: i for i, name in enumerate(bench.candidates)}
    return sorted(rows, key=lambda r: (-(r["error"] if r["error"] is not None else -1.0), position[r["node"]]))
