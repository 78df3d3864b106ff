"""External-data references in the embedded graph: a bundle is self-contained, so onnxruntime must never
be handed a graph that would read a file beside the model. Each is refused (InvalidGraph) before a
session is built; a legitimate external binding (graphs over 2 GB) still loads."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgepack.runtime import errors as E
from edgepack.runtime import load

import bundles
from conftest import write


def _refer(t, location, keep_data=False, extra=None):
    if not keep_data:
        t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in [("location", location), *(extra or [])]:
        entry = t.external_data.add()
        entry.key, entry.value = key, value


CASES = {
    "a path out of the folder": lambda m: _refer(m.graph.initializer[0], "../../../../etc/passwd"),
    "an absolute path": lambda m: _refer(m.graph.initializer[0], "/etc/passwd"),
    "a file beside the model": lambda m: _refer(m.graph.initializer[0], "weights.bin"),
    # the bytes are spliced in as usual, and the tensor also points at a file: which one wins is
    # onnxruntime's choice, so neither is allowed
    "inline bytes and a path": lambda m: _refer(m.graph.initializer[0], "/etc/passwd", keep_data=True),
    "inline bytes and its own binding": lambda m: _refer(
        m.graph.initializer[0], f"edgepack:{m.graph.initializer[0].name}", keep_data=True),
    "another tensor's binding": lambda m: _refer(m.graph.initializer[0], f"edgepack:{m.graph.initializer[1].name}"),
    "offset and length keys": lambda m: _refer(m.graph.initializer[0], "/etc/passwd",
                                               extra=[("offset", "0"), ("length", "16")]),
    "a Constant node's value": lambda m: m.graph.node.insert(0, helper.make_node(
        "Constant", [], ["c"], value=_external_tensor("/etc/passwd"))),
    "no location at all": lambda m: _refer(m.graph.initializer[0], ""),
}


def _external_tensor(location):
    t = helper.make_tensor("c", TensorProto.FLOAT, [2], [1.0, 2.0])
    _refer(t, location)
    return t


@pytest.mark.parametrize("case", list(CASES))
def test_an_external_data_reference_is_refused(tmp, mlp_bundle, case):
    bad = write(tmp, bundles.rewritten(write(tmp, mlp_bundle[0], "src.edgepack"), CASES[case]))
    with pytest.raises(E.InvalidGraph, match="refers to external data|self-contained"):
        load(bad)


def test_a_real_external_binding_still_loads(tmp):
    """The one external reference allowed: a main-graph initializer bound to its own manifest entry."""
    import onnxruntime as ort

    import edgepack
    import graphs
    from edgepack.packager import skeleton

    model, feeds = graphs.mlp(d_in=512, hidden=(512,), d_out=8)
    saved, skeleton.INLINE_LIMIT = skeleton.INLINE_LIMIT, 200_000  # bind the 1 MiB weight externally
    try:
        edgepack.package(model, output=tmp / "ext.edgepack")
    finally:
        skeleton.INLINE_LIMIT = saved
    session = load(tmp / "ext.edgepack")
    assert "external" in {t.binding for t in session.manifest.tensors}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert np.array_equal(session.run(feeds)[session.output_names[0]], want[0])
