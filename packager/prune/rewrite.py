"""Applying a deps: slice every initializer that follows the removed units, apply the edits, and refresh
the inferred shapes, so the written graph is smaller in fact, not only filled with zeros."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from .analysis import Dependencies
from .context import Keep


def rewrite(deps: Dependencies, removed: Iterable[int]) -> tuple[onnx.ModelProto, Keep]:
    keep = deps.keep_fn(removed)
    model = onnx.ModelProto()
    model.CopyFrom(deps.model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    done: set[tuple[str, int]] = set()
    for s in deps.slices:
        if (s.param, s.axis) in done:
            continue
        done.add((s.param, s.axis))
        mask = keep(s.labels)
        if mask.all():
            continue
        value = numpy_helper.to_array(inits[s.param])
        inits[s.param].CopyFrom(numpy_helper.from_array(np.compress(mask, value, axis=s.axis), s.param))
    for edit in deps.edits:
        edit.apply(graph, keep)
    refresh_shapes(model)
    return model, keep


def refresh_shapes(model: onnx.ModelProto) -> None:
    """Drop the stale intermediate shapes and infer them again (left empty if inference fails)."""
    del model.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return
    model.graph.value_info.extend(inferred.graph.value_info)


def set_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    """Replace (or add) initializer `name`, keeping its dtype."""
    for t in model.graph.initializer:
        if t.name == name:
            dtype = numpy_helper.to_array(t).dtype if t.dims else value.dtype
            t.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype), name))
            return
    model.graph.initializer.append(numpy_helper.from_array(value, name))


def get_initializer(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    return None


def set_own_input(model: onnx.ModelProto, node: onnx.NodeProto, index: int, value: np.ndarray) -> None:
    """Give `node` the value `value` at input `index` (appending the input when index is one past the end),
    without touching other nodes that share the old initializer: a shared one is copied under a new name."""
    name = node.input[index] if index < len(node.input) else ""
    shared = bool(name) and any(n is not node and name in n.input for n in model.graph.node)
    if not name or shared:
        name = f"{node.name}__{index}"
        old = get_initializer(model, node.input[index]) if index < len(node.input) else None
        dtype = old.dtype if old is not None else value.dtype
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        if index < len(node.input):
            node.input[index] = name
        else:
            node.input.append(name)
        return
    set_initializer(model, name, value)
