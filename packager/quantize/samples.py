"""Calibration and evaluation samples, checked against the model's inputs before onnxruntime sees them, so a
float64 array or a wrong rank is an error naming the array rather than an onnxruntime traceback."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from edgepack.runtime.errors import OptionError

from ..datasets import Samples, load_samples
from ..dims import current_shapes, is_fixed
from .sanity import warn_nonfinite


def model_inputs(model: onnx.ModelProto) -> dict[str, tuple[np.dtype | None, list[int | None] | None]]:
    """Inputs the caller must feed (initializers excluded): name -> (dtype, dims; None where dynamic)."""
    inits = {t.name for t in model.graph.initializer}
    out: dict[str, tuple[np.dtype | None, list[int | None] | None]] = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)) if tensor.elem_type else None
        dims = [d.dim_value if is_fixed(d) else None for d in tensor.shape.dim] \
            if tensor.HasField("shape") else None
        out[value.name] = (dtype, dims)
    return out


def scalar_inputs(model: onnx.ModelProto) -> list[str]:
    """The inputs of rank 0 (an npz of samples gives them one value per sample)."""
    return [name for name, (_, dims) in model_inputs(model).items() if dims == []]


def check_samples(samples: Samples, model: onnx.ModelProto, what: str) -> None:
    """Refuse samples whose arrays do not fit the model's inputs (dtype, rank, fixed dimensions)."""
    specs = model_inputs(model)
    for i, feeds in enumerate(samples.feeds):
        for name, array in feeds.items():
            dtype, dims = specs[name]
            where = f"{what} {os.path.basename(samples.source)}: sample {i}, array {name!r}"
            if dtype is not None and array.dtype != dtype:
                raise OptionError(f"{where} is {array.dtype}, the model's input is {dtype}; save it as {dtype}")
            if dims is None:
                continue
            if array.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, array.shape)):
                shown = ["?" if d is None else d for d in dims]
                raise OptionError(f"{where} has shape {list(array.shape)}, the model's input takes {shown} (an "
                                  "npz of samples feeds each as a batch of one; use a folder of .npz files to "
                                  "give complete feeds)")


def load_for(model: onnx.ModelProto, path: str, what: str, limit: int | None = None) -> Samples:
    samples = load_samples(path, list(model_inputs(model)), limit=limit, scalars=scalar_inputs(model))
    if not len(samples):
        raise OptionError(f"{what} {path}: no samples")
    check_samples(samples, model, what)
    warn_nonfinite(samples, what)
    return samples


def random_samples(model: onnx.ModelProto, count: int = 8, seed: int = 0) -> Samples | None:
    """Random feeds (shapes from --shape, else dynamic dimensions 1; integer inputs 0 or 1, valid ids for any
    vocabulary), or None when an input's shape or type is unknown."""
    rng = np.random.default_rng(seed)
    specs = model_inputs(model)
    if any(dtype is None or dims is None for dtype, dims in specs.values()):
        return None
    feeds, given = [], current_shapes()
    for _ in range(count):
        one = {}
        for name, (dtype, dims) in specs.items():
            assert dtype is not None and dims is not None  # returned None above otherwise
            shape = list(given[name]) if name in given else [d or 1 for d in dims]
            one[name] = (rng.standard_normal(shape) if dtype.kind == "f" else rng.integers(0, 2, shape)).astype(dtype)
        feeds.append(one)
    return Samples(feeds, None, "random inputs")
