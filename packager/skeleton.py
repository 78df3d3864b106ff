"""Split an ONNX model into its graph without weights (the skeleton) and its tensors.

Every TensorProto that carries `raw_data` (initializers, `Constant` values and other attribute tensors,
sparse tensors, inside subgraphs and functions too) becomes a bundle tensor: its payload is cut out of the
serialized model, and its *splice* records where in the skeleton the payload goes back. Streaming the
skeleton with the payloads spliced back in reproduces the serialized model byte for byte, so onnxruntime
sees exactly the model that was packaged.

Tensors stored in typed fields (`float_data`, `int64_data`, ...) are first rewritten to `raw_data` (same
values). String tensors stay in the skeleton. A model whose serialization would exceed protobuf's 2 GB
limit binds its largest main-graph initializers externally (docs/FORMAT.md, "Bindings").
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import numpy_helper

from edgepack.runtime.binding import unique_name
from edgepack.runtime.errors import ModelError
from edgepack.runtime.format import (
    BINDING_EXTERNAL, BINDING_INLINE, BINDING_MAPPED, EXTERNAL_LOCATION_PREFIX, ONNX_TO_DTYPE, raw_length,
)
from edgepack.runtime.protowire import ProtoError, scan_model

# Serialized models must stay under protobuf's 2 GiB; keep a margin for the graph itself.
INLINE_LIMIT = 1_800_000_000
# Typed-field tensors smaller than this stay as they are (they are a few numbers: shapes, axes).
_TYPED_TO_RAW_MIN = 64


@dataclass
class SplitTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: memoryview
    binding: str
    splice: int | None


@dataclass
class Split:
    skeleton: bytes
    tensors: list[SplitTensor]


def iter_tensor_protos(model: onnx.ModelProto):
    """Every TensorProto that can hold weights, including those inside subgraphs and functions."""
    graphs = [model.graph]
    for f in model.functions:
        yield from _node_tensors(f.node, graphs)
    for info in model.training_info:
        graphs += [info.initialization, info.algorithm]
    while graphs:
        g = graphs.pop()
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from _node_tensors(g.node, graphs)


def _node_tensors(nodes, graphs):
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def normalize(model: onnx.ModelProto) -> None:
    """Rewrite tensors held in typed fields to raw_data, in place (values unchanged)."""
    for t in iter_tensor_protos(model):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(f"tensor {t.name!r} still refers to external data; load the model with its data "
                             "files beside it")
        if t.data_type == onnx.TensorProto.STRING or t.HasField("raw_data"):
            continue
        array = numpy_helper.to_array(t)
        if array.nbytes < _TYPED_TO_RAW_MIN:
            continue
        name, dims, dtype = t.name, list(t.dims), t.data_type
        t.CopyFrom(numpy_helper.from_array(array, name))
        if t.data_type != dtype or list(t.dims) != dims:
            raise ModelError(f"tensor {name!r} changed type while normalizing it")


def _bind_external(model: onnx.ModelProto) -> dict[str, bytes]:
    """Bind main-graph initializers of 1 MiB and more outside the graph, then take back the smallest of
    them while the serialized graph stays under INLINE_LIMIT. Returns the external ones by name."""
    big = [t for t in model.graph.initializer if len(t.raw_data) >= 1 << 20]
    held = {id(t): t.raw_data for t in big}
    for t in big:
        t.ClearField("raw_data")
    total = model.ByteSize()
    external: dict[str, bytes] = {}
    for t in sorted(big, key=lambda t: (len(held[id(t)]), t.name)):
        data = held[id(t)]
        if total + len(data) + 16 <= INLINE_LIMIT:
            t.raw_data = data
            total += len(data) + 16
            continue
        if not t.name or t.name in external:
            raise ModelError(f"a large initializer has a missing or repeated name ({t.name!r}); "
                             "name it uniquely before packaging")
        external[t.name] = data
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        entry = t.external_data.add()
        entry.key, entry.value = "location", EXTERNAL_LOCATION_PREFIX + t.name
    if total > INLINE_LIMIT:
        raise ModelError("the model's graph is over 2 GB even without its large initializers")
    return external


def _may_fit(model: onnx.ModelProto) -> bool:
    try:
        return model.ByteSize() <= INLINE_LIMIT
    except Exception:  # protobuf refuses to size messages over 2 GB on some builds
        return False


# The only fields a TensorProto may set to be mapped: the runtime rebuilds it from the manifest with these.
_MAPPABLE_FIELDS = {"name", "dims", "data_type", "raw_data"}


def _set_fields(t: onnx.TensorProto) -> set[str]:
    """The fields `t` sets, but for a data_location of DEFAULT: onnx.load leaves that set on every tensor it
    read from an external data file, and it says what a TensorProto without it says."""
    return {f.name for f, value in t.ListFields()
            if not (f.name == "data_location" and value == onnx.TensorProto.DEFAULT)}


def _take_mapped(model: onnx.ModelProto, min_bytes: int) -> tuple[onnx.ModelProto, list[SplitTensor]]:
    """A copy of `model` without its mappable initializers (main graph, raw_data of at least `min_bytes`, a
    name no other tensor has, no field but name, dims, data type and data), and those initializers."""
    names: dict[str, int] = {}
    for t in iter_tensor_protos(model):
        names[t.name] = names.get(t.name, 0) + 1
    picked = {i for i, t in enumerate(model.graph.initializer)
              if len(t.raw_data) >= min_bytes and t.name and names[t.name] == 1
              and t.data_type in ONNX_TO_DTYPE and _set_fields(t) <= _MAPPABLE_FIELDS}
    if not picked:
        return model, []
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    mapped = [SplitTensor(t.name, ONNX_TO_DTYPE[t.data_type], tuple(t.dims), memoryview(t.raw_data), BINDING_MAPPED,
                          None) for i, t in enumerate(model.graph.initializer) if i in picked]
    kept = [t for i, t in enumerate(copy.graph.initializer) if i not in picked]
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(kept)
    return copy, mapped


def split_model(model: onnx.ModelProto, mapped_min_bytes: int | None = None) -> Split:
    """Normalize `model` (in place), then cut it into skeleton and tensors. With `mapped_min_bytes` (the mapped
    layout), main-graph initializers of at least that many bytes leave the skeleton as mapped tensors, stored
    after the others (the model passed in keeps them)."""
    normalize(model)
    mapped: list[SplitTensor] = []
    if mapped_min_bytes is not None:
        model, mapped = _take_mapped(model, mapped_min_bytes)
    external = _bind_external(model) if not _may_fit(model) else {}
    serialized = model.SerializeToString()
    try:
        records = scan_model(serialized)
    except ProtoError as e:
        raise ModelError(f"the serialized model could not be walked: {e}") from None
    view = memoryview(serialized)
    skeleton, tensors, taken = [], [], set[str]()
    pos = removed = 0
    for r in records:
        if r.raw_offset is None or r.raw_length == 0:
            continue
        dtype = ONNX_TO_DTYPE.get(r.data_type)
        if dtype is None:
            raise ModelError(f"tensor {r.label!r} has ONNX data type {r.data_type}, which edgepack cannot store")
        shape = tuple(r.dims)
        if raw_length(dtype, shape) != r.raw_length:
            raise ModelError(f"tensor {r.label!r}: {r.raw_length} bytes of raw_data for {dtype}{list(shape)}")
        skeleton.append(view[pos:r.raw_offset])
        tensors.append(SplitTensor(unique_name(r.label, taken), dtype, shape,
                                   view[r.raw_offset:r.raw_offset + r.raw_length], BINDING_INLINE,
                                   r.raw_offset - removed))
        pos = r.raw_offset + r.raw_length
        removed += r.raw_length
    skeleton.append(view[pos:])
    for t in model.graph.initializer:
        if t.name in external:
            dtype = ONNX_TO_DTYPE.get(t.data_type)
            if dtype is None:
                raise ModelError(f"tensor {t.name!r} has ONNX data type {t.data_type}, which edgepack cannot store")
            if t.name in taken:
                raise ModelError(f"tensor name {t.name!r} is used twice; rename one before packaging")
            taken.add(t.name)
            tensors.append(SplitTensor(t.name, dtype, tuple(t.dims), memoryview(external[t.name]),
                                       BINDING_EXTERNAL, None))
    for t in mapped:
        if t.name in taken:  # a Constant's output or a sparse tensor of the same name
            raise ModelError(f"tensor name {t.name!r} is used twice; rename one before packaging")
        taken.add(t.name)
    return Split(b"".join(skeleton), tensors + mapped)
