"""Getting the packaged model back out of a bundle, for other tools (Netron, onnxruntime_perf_test, onnx):
export_model() writes the exact model the runtime runs, the graph with every tensor's bytes spliced back in
where load() splices them (so its initializers are bit-identical to the runtime's); model_io() lists its
inputs and outputs without decoding any tensor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator

import onnx
from onnx import external_data_helper, helper, numpy_helper

from edgepack.runtime.errors import BundleError
from edgepack.runtime.format import BINDING_EXTERNAL, BINDING_INLINE, BINDING_MAPPED, EXTERNAL_LOCATION_PREFIX
from edgepack.runtime.paths import check_output
from edgepack.runtime.reader import Bundle, open_bundle

from .dims import dim_of
from .writer import write_atomic


@dataclass
class Exported:
    """What export_model() wrote."""

    path: str
    model_bytes: int
    data_path: str | None      # the external data file, for a model whose largest tensors are bound externally
    tensors: int


def _stream(bundle: Bundle, graph: Any, zeros: bool = False) -> Iterator[bytes | memoryview]:
    """The serialized model: graph bytes with each inline tensor's bytes (or as many zero bytes) spliced in.
    A mapped bundle's large tensors are not in its stored graph (see _with_mapped)."""
    inline = sorted((t for t in bundle.manifest.tensors if t.binding == BINDING_INLINE),
                    key=lambda t: t.splice or 0)
    view, pos = memoryview(graph), 0
    for t in inline:
        if t.splice is None or t.splice < pos or t.splice > len(view):
            raise BundleError(f"{bundle.path}: tensor {t.name!r} has no valid place in the graph")
        yield view[pos:t.splice]
        yield bytes(t.raw_length) if zeros else memoryview(bundle.read_blob(t))
        pos = t.splice
    yield view[pos:]


def export_model(bundle: str | os.PathLike, output: str | os.PathLike,
                 public_key: str | os.PathLike | bytes | None = None) -> Exported:
    """Write the model packaged in `bundle` to `output` (an .onnx file, written atomically). Every tensor is
    decoded and its SHA-256 checked. A model whose largest initializers the bundle binds externally (models
    over 2 GB) gets them in `output`.data beside it, referred to as ONNX external data."""
    path = os.fspath(bundle)
    target = check_output(output, [path], "output")
    with open_bundle(path, public_key=public_key) as b:
        graph = b.read_graph()
        external = [t for t in b.manifest.tensors if t.binding == BINDING_EXTERNAL]
        count = len(b.manifest.tensors)
        mapped = [t for t in b.manifest.tensors if t.binding == BINDING_MAPPED]
        if mapped:  # a mapped bundle holds inline and mapped tensors only (docs/FORMAT.md, Layouts)
            write_atomic(target, [_with_mapped(b, graph, mapped).SerializeToString()])
            return Exported(target, os.path.getsize(target), None, count)
        if not external:
            write_atomic(target, _stream(b, graph))
            return Exported(target, os.path.getsize(target), None, count)
        return _with_external(b, graph, external, target, count)


def _with_mapped(b: Bundle, graph: Any, mapped: list) -> onnx.ModelProto:
    """The model of a mapped bundle: its stored graph, plus the mapped tensors as main-graph initializers, as
    load() adds them (runtime/mapped.py), here with their bytes inline (each tensor's SHA-256 checked)."""
    model = onnx.load_from_string(b"".join(bytes(c) for c in _stream(b, graph)))
    model.graph.initializer.extend(numpy_helper.from_array(b.tensor(t.name), t.name) for t in mapped)
    return model


def _with_external(b: Bundle, graph: Any, external: list, output: str, count: int) -> Exported:
    model = onnx.load_from_string(b"".join(bytes(c) for c in _stream(b, graph)))
    data_name = os.path.basename(output) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(output)), data_name)
    check_output(data_path, [b.path], "external data file")
    offsets: dict[str, tuple[int, int]] = {}
    chunks, offset = [], 0
    for t in external:
        data = bytes(b.read_blob(t))
        pad = (-offset) % 4096
        chunks += [bytes(pad), data]
        offsets[EXTERNAL_LOCATION_PREFIX + t.name] = (offset + pad, len(data))
        offset += pad + len(data)
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = external_data_helper.ExternalDataInfo(tensor).location
        if location not in offsets:
            raise BundleError(f"{b.path}: tensor {tensor.name!r} refers to {location!r}, which the bundle lacks")
        start, length = offsets[location]
        external_data_helper.set_external_data(tensor, data_name, offset=start, length=length)
    write_atomic(data_path, chunks)
    write_atomic(output, [model.SerializeToString()])
    return Exported(output, os.path.getsize(output), data_path, count)


def _shown(dim: int | str | None) -> int | str:
    """A dimension as inspect shows it: its size, the model's name for it, or "?" (also for the unk__N names
    onnx's shape inference makes up while quantizing)."""
    if dim is None or (isinstance(dim, str) and re.fullmatch(r"unk__\d+", dim)):
        return "?"
    return dim


def _describe(values: Any) -> list[dict[str, Any]]:
    out = []
    for v in values:
        t = v.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type).name if v.type.HasField("tensor_type") and \
            t.elem_type else "unknown"
        shape = [_shown(dim_of(d)) for d in t.shape.dim] if t.HasField("shape") else None
        out.append({"name": v.name, "dtype": dtype, "shape": shape})
    return out


def model_io(bundle: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """The packaged model's inputs and outputs: name, dtype (a numpy name) and shape (sizes, symbolic names
    as the model writes them, "?" for an unnamed dynamic dimension). Decodes the graph only."""
    with open_bundle(bundle) as b:
        model = onnx.load_from_string(b"".join(bytes(c) for c in _stream(b, b.read_graph(), zeros=True)))
        mapped = {t.name for t in b.manifest.tensors if t.binding == BINDING_MAPPED}
    inits = {t.name for t in model.graph.initializer} | mapped
    return {"inputs": _describe(i for i in model.graph.input if i.name not in inits),
            "outputs": _describe(model.graph.output)}


__all__ = ["Exported", "export_model", "model_io"]
