"""Dynamic dimensions as exporters write them.

ONNX marks a dynamic dimension by leaving `dim_value` unset (optionally naming it in `dim_param`), but
Paddle2ONNX and some TensorFlow exporters write `dim_value: -1` (and a few write 0). onnxruntime treats such a
dimension as dynamic; numpy and onnx's shape inference do not. The packager therefore turns every
non-positive `dim_value` into an unnamed dynamic dimension when it reads a model, so that every later step
(sample checks, random feeds, pruning, quantization, measuring) sees the dimension as what it is.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

import onnx


def is_fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """Whether `dim` is a fixed size (a positive dim_value); anything else is dynamic."""
    return dim.HasField("dim_value") and dim.dim_value > 0


def dim_of(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    """A dimension as a value: its size when fixed, its symbolic name when it has one, else None."""
    if is_fixed(dim):
        return int(dim.dim_value)
    return dim.dim_param or None


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def normalize_dims(model: onnx.ModelProto) -> int:
    """Make every non-positive dim_value of the model's inputs, outputs and value_info (subgraphs included)
    an unnamed dynamic dimension, in place. Returns how many it changed."""
    changed = 0
    for graph in _graphs(model.graph):
        for value in (*graph.input, *graph.output, *graph.value_info):
            if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
                continue
            for dim in value.type.tensor_type.shape.dim:
                if dim.HasField("dim_value") and dim.dim_value <= 0:
                    dim.ClearField("dim_value")
                    changed += 1
    return changed


_GIVEN: contextvars.ContextVar[dict[str, tuple[int, ...]] | None] = contextvars.ContextVar("edgepack_shapes",
                                                                                          default=None)


def input_dims(model: onnx.ModelProto) -> list[tuple[str, list[int | str | None] | None]]:
    """The inputs the caller feeds (initializers excluded): name and dims (None for an unknown rank)."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        t = value.type.tensor_type
        out.append((value.name, [dim_of(d) for d in t.shape.dim] if t.HasField("shape") else None))
    return out


@contextlib.contextmanager
def given_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None) -> Iterator[None]:
    """Make `shapes` (input name -> shape, from --shape) the shapes of the random probes made while packaging
    `model`, after checking them against its inputs."""
    from edgepack.runtime.feeds import check_shapes

    given = {k: tuple(int(d) for d in v) for k, v in (shapes or {}).items()}
    check_shapes(given, input_dims(model))
    token = _GIVEN.set(given)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def current_shapes() -> dict[str, tuple[int, ...]]:
    """The shapes given_shapes() set for this package() call (empty outside one)."""
    return _GIVEN.get() or {}


def dynamic_inputs(model: onnx.ModelProto) -> list[str]:
    """The inputs with a dynamic dimension (or an unknown rank)."""
    return [name for name, dims in input_dims(model) if dims is None or not all(isinstance(d, int) for d in dims)]


def sample_shapes(model: onnx.ModelProto, feeds: Mapping[str, Any] | None) -> dict[str, list[int]]:
    """Shapes to record in the bundle for inputs with a dynamic dimension: from one sample's feeds, else those
    given with --shape; so that run, measure and report can make up feeds of a size the model takes."""
    out: dict[str, list[int]] = {}
    given = current_shapes()
    for name, dims in input_dims(model):
        if dims is not None and all(isinstance(d, int) for d in dims):
            continue
        value = (feeds or {}).get(name)
        if value is not None and hasattr(value, "shape") and all(int(d) > 0 for d in value.shape):
            out[name] = [int(d) for d in value.shape]
        elif name in given:
            out[name] = list(given[name])
    return out


def with_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None) -> onnx.ModelProto:
    """`model`, or a copy whose inputs named in `shapes` have those sizes in place of dynamic dimensions (the
    batch, the first dimension, stays as it is), for shape inference to size what follows."""
    usable = {k: v for k, v in (shapes or {}).items() if v is not None}
    if not usable:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in copy.graph.input:
        sizes = usable.get(value.name)
        t = value.type.tensor_type
        if sizes is None or not t.HasField("shape") or len(t.shape.dim) != len(sizes):
            continue
        for i, (dim, size) in enumerate(zip(t.shape.dim, sizes)):
            if i > 0 and not is_fixed(dim):
                dim.dim_value = int(size)
    return copy
