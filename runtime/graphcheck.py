"""The checks load() makes on a bundle's stored graph before onnxruntime sees a byte of it.

runtime/protowire.py reads the graph in its canonical encoding only (so that it reads the model onnxruntime
reads) and lists every TensorProto in it; this module holds those tensors against the manifest: each
inline tensor sits exactly where its splice says with the manifest's dtype and shape, the graph holds no
tensor bytes the manifest does not list, and no tensor refers to data outside the bundle. runtime/binding.py
then holds the graph's names to the manifest's: onnxruntime knows a tensor by the name in the graph.
"""

from __future__ import annotations

from typing import Any

from .binding import check_names
from .errors import InvalidGraph
from .format import DTYPES, EXTERNAL_LOCATION_PREFIX
from .manifest import TensorEntry
from .protowire import GraphNames, ProtoError, TensorRecord, scan_model
from .reader import Bundle

_DATA_LOCATION_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def check_graph(bundle: Bundle, graph: Any, inline: list[TensorEntry], external: list[TensorEntry],
                max_fields: int | None = None) -> tuple[list[int], int]:
    """Raise InvalidGraph unless the graph takes exactly the bundle's tensors (see the module's docstring).
    `max_fields` bounds the protobuf fields read (limits.LoadLimits.max_fields). Returns the element count
    of each sparse tensor once made dense, and what its packed integers and strings take (limits.check_dense)."""
    names = GraphNames()
    try:
        records = scan_model(memoryview(graph), [(t.splice or 0, t.raw_length) for t in inline], spliced_only=True,
                             max_fields=max_fields, names=names)
    except ProtoError as e:
        raise InvalidGraph(bundle.path, str(e)) from None
    by_name = {t.name: t for t in external}
    used: set[str] = set()
    for r in records:
        if r.external is not None or r.data_location == _DATA_LOCATION_EXTERNAL:
            entry = _external_entry(bundle, r, by_name, used)
        elif r.splice is not None:
            entry = inline[r.splice]
        else:
            continue
        if DTYPES[entry.dtype][0] != r.data_type or tuple(r.dims) != entry.shape:
            raise InvalidGraph(bundle.path, f"tensor {entry.name!r} is {entry.dtype}{list(entry.shape)} in the "
                                            "manifest but not in the graph")
    unused = set(by_name) - used
    if unused:
        raise InvalidGraph(bundle.path, f"external tensors {sorted(unused)[:5]} are not used by the graph")
    check_names(bundle.path, records, names, inline, external, appended=False)
    return names.dense, names.held


def _external_entry(bundle: Bundle, r: TensorRecord, by_name: dict[str, TensorEntry],
                    used: set[str]) -> TensorEntry:
    """The manifest entry an externally bound TensorProto names. It is a main-graph initializer, its only
    external-data key is a location `edgepack:<its own name>`, and it carries no data of its own: anything
    else would make onnxruntime read a file beside the model, or mix two sources for one tensor. Such a
    binding never reaches onnxruntime's file loading: load() supplies the tensor itself
    (SessionOptions.add_external_initializers)."""
    location = (r.external or {}).get("location", "")
    name = location[len(EXTERNAL_LOCATION_PREFIX):]
    if (not r.main_initializer or not location.startswith(EXTERNAL_LOCATION_PREFIX) or name not in by_name
            or name != r.label or set(r.external or {}) != {"location"}
            or r.data_location != _DATA_LOCATION_EXTERNAL or r.splice is not None or r.inline_data):
        raise InvalidGraph(bundle.path, f"tensor {r.label!r} refers to external data {location[:200]!r}; "
                                        "a bundle must be self-contained")
    if name in used:
        raise InvalidGraph(bundle.path, f"tensor {name!r} is bound twice")
    used.add(name)
    return by_name[name]
