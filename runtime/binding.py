"""Binding the names onnxruntime computes with to the names the manifest lists (security review 3, F3).

load() splices each inline tensor's decoded bytes into the graph at its splice offset; onnxruntime then
knows those bytes by the name of the TensorProto they land in, not by the manifest's name. A bundle from
anywhere must not get the runtime to compute with weights other than those its manifest lists, so:

- each spliced tensor's manifest name is the one the writer gives the graph tensor at that splice
  (unique_name: the tensor's label, with `#2`, `#3`... for repeats), so tensor(name) and verify() speak of
  the very tensor onnxruntime uses under that name;
- no name a graph defines (an initializer, a sparse initializer, a node's output) is a manifest tensor's
  name unless its value is that tensor: an initializer in typed fields (float_data...), a Constant's
  value_floats, another node's output or a sparse initializer named like one is refused;
- no name is defined twice in one graph: onnxruntime would pick one of the two definitions (the first
  initializer of a name, for one), and the other could be anything.

A subgraph (an If, Loop or Scan body) may define a name its enclosing graph defines too: ONNX scoping gives
the body its own definition, as onnxruntime computes it (tests/attacks/test_sec3_manifest_binding.py), and
the rules above already hold each definition that carries a manifest tensor's name to that very tensor.
Exporters write such bodies (a branch's own `weight`), and onnx's checker accepts them.
"""

from __future__ import annotations

from .errors import InvalidGraph
from .manifest import TensorEntry
from .protowire import ROLE_INITIALIZER, ROLE_SPARSE, GraphNames, TensorRecord

_DEFINES = {ROLE_INITIALIZER: "initializer", ROLE_SPARSE: "sparse initializer"}


def unique_name(label: str, taken: set[str]) -> str:
    """The manifest name the writer gives a tensor labelled `label` (protowire's TensorRecord.label) when
    the tensors before it took the names in `taken` (updated): the label itself, else `label#2`, `#3`...
    (`tensor#2`... for an empty label). packager/skeleton.py names tensors with this very function."""
    base, k, name = label or "tensor", 1, label
    while name in taken or not name:
        k += 1
        name = f"{base}#{k}"
    taken.add(name)
    return name


def check_names(path: str, records: list[TensorRecord], names: GraphNames, inline: list[TensorEntry],
                others: list[TensorEntry], appended: bool) -> None:
    """Raise InvalidGraph unless the graph's names are bound to the manifest's (see the module's docstring).
    `inline[i]` is the tensor of splice i; `others` are the external tensors (bound by main-graph
    initializers, already checked) or, with `appended`, the mapped ones the runtime adds to the main graph."""
    taken: set[str] = set()
    defs: list[tuple[int, str, str, bool]] = []  # (scope, name, what defines it, whether a manifest tensor)
    spliced: dict[int, set[str]] = {}  # node -> labels of the spliced tensors among its attributes
    for r in records:
        if r.splice is not None:
            expected, entry = unique_name(r.label, taken), inline[r.splice]
            if entry.name != expected:
                raise InvalidGraph(path, f"the manifest names the tensor spliced in at byte {entry.splice} "
                                         f"{entry.name[:200]!r}, but the graph's tensor there is "
                                         f"{r.label[:200]!r} (its manifest name would be {expected[:200]!r})")
            if r.node >= 0:
                spliced.setdefault(r.node, set()).add(r.label)
        if r.role in _DEFINES and r.name:
            defs.append((r.scope, r.name, _DEFINES[r.role], r.splice is not None or r.external is not None))
    for scope, node, name in names.outputs:
        if name:
            defs.append((scope, name, "node output", name in spliced.get(node, ())))
    listed = {t.name for t in inline} | {t.name for t in others}
    for _, name, what, bound in defs:
        if not bound and name in listed:
            raise InvalidGraph(path, f"the graph defines {name[:200]!r}, a manifest tensor's name, as {_a(what)} "
                                     "whose value is not that tensor: onnxruntime could compute with it instead "
                                     "of the manifest's")
    if appended:
        defs += [(names.main, t.name, "mapped tensor", True) for t in others]
    _check_unique(path, defs)


def _a(what: str) -> str:
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"


def _check_unique(path: str, defs: list[tuple[int, str, str, bool]]) -> None:
    """Each name defined once in its graph."""
    seen: dict[tuple[int, str], str] = {}
    for scope, name, what, _ in defs:
        other = seen.get((scope, name))
        if other is not None:
            raise InvalidGraph(path, f"{name[:200]!r} is defined twice in one graph ({_a(other)} and {_a(what)}): "
                                     "onnxruntime would compute with only one of them")
        seen[scope, name] = what
