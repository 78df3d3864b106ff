"""Any model plain onnxruntime runs, edgepack packages and runs bit-identically."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import edgepack
from edgepack.runtime import load

import graphs


def plain(model: onnx.ModelProto, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


@pytest.mark.parametrize("kind", sorted(graphs.ALL))
def test_bit_identical(kind, tmp):
    model, feeds = graphs.ALL[kind]()
    expected = plain(model, feeds)
    path = tmp / f"{kind}.edgepack"
    edgepack.package(model, output=path)
    outputs = load(path).run(feeds)
    assert list(outputs) == list(expected)
    for name in expected:
        assert outputs[name].dtype == expected[name].dtype
        assert np.array_equal(outputs[name], expected[name]), name


def test_constant_weights_are_stored_as_tensors(tmp):
    model, _ = graphs.constant_weights()
    edgepack.package(model, output=tmp / "c.edgepack")
    with edgepack.runtime.open_bundle(tmp / "c.edgepack") as b:
        names = {t.name: t for t in b.manifest.tensors}
    assert names["w"].shape == (32, 16) and names["b"].shape == (16,)
    assert names["w"].raw_length == 32 * 16 * 4


def test_subgraph_weights_are_stored_as_tensors(tmp):
    model, _ = graphs.subgraphs()
    edgepack.package(model, output=tmp / "s.edgepack")
    with edgepack.runtime.open_bundle(tmp / "s.edgepack") as b:
        names = {t.name for t in b.manifest.tensors}
    assert {"w_then", "w_else", "w_loop"} <= names


def test_mlp_50mb_bit_identical(tmp):
    model, feeds = graphs.mlp_bytes(50)
    path = tmp / "model.onnx"
    onnx.save(model, path)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    edgepack.package(path, output=tmp / "m.edgepack")
    out = load(tmp / "m.edgepack").run(feeds)
    assert np.array_equal(next(iter(out.values())), expected)


def test_external_data_source(tmp):
    model, feeds = graphs.mlp(hidden=(256, 256))
    expected = plain(model, feeds)
    onnx.save(model, tmp / "ext.onnx", save_as_external_data=True, location="ext.data", size_threshold=1024)
    assert (tmp / "ext.data").exists()
    edgepack.package(tmp / "ext.onnx", output=tmp / "e.edgepack")
    out = load(tmp / "e.edgepack").run(feeds)
    assert all(np.array_equal(out[k], expected[k]) for k in expected)


def test_deterministic(tmp):
    model, _ = graphs.folded_initializers()
    onnx.save(model, tmp / "m.onnx")
    edgepack.package(tmp / "m.onnx", output=tmp / "a.edgepack")
    edgepack.package(tmp / "m.onnx", output=tmp / "b.edgepack", threads=1)
    assert (tmp / "a.edgepack").read_bytes() == (tmp / "b.edgepack").read_bytes()


def test_session_options_from_profile_match_plain_onnxruntime(tmp):
    """Same session options give the same outputs: the profile's options reach onnxruntime."""
    from edgepack.runtime.profile import resolve
    from edgepack.runtime.session import session_options

    model, feeds = graphs.mlp()
    edgepack.package(model, output=tmp / "m.edgepack")
    session = load(tmp / "m.edgepack", threads=1)
    so = session_options(resolve(None), threads=1)
    plain_s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(feeds)["a2"], plain_s.run(None, feeds)[0])
