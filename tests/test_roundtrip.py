"""Any model plain onnxruntime runs, edgepack packages and runs bit-identically.

The cases come from tests/prebuilt.py, so the tests without the `packager` mark also run where only the
runtime is installed (scripts/arm64-check runs them on aarch64 against bundles built on x86).
"""

import numpy as np
import onnxruntime as ort
import pytest

import edgepack
from edgepack.runtime import load

import prebuilt


def plain(model_path: str, feeds, options=None):
    s = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


@pytest.mark.parametrize("kind", prebuilt.round_trip_kinds())
def test_bit_identical(kind, cases):
    case = cases[kind]
    expected = plain(case.model, case.feeds)
    outputs = load(case.bundle).run(case.feeds)
    assert list(outputs) == list(expected)
    for name in expected:
        assert outputs[name].dtype == expected[name].dtype
        assert np.array_equal(outputs[name], expected[name]), name


def test_constant_weights_are_stored_as_tensors(cases):
    with edgepack.runtime.open_bundle(cases["constant_weights"].bundle) as b:
        names = {t.name: t for t in b.manifest.tensors}
    assert names["w"].shape == (32, 16) and names["b"].shape == (16,)
    assert names["w"].raw_length == 32 * 16 * 4


def test_subgraph_weights_are_stored_as_tensors(cases):
    with edgepack.runtime.open_bundle(cases["subgraphs"].bundle) as b:
        names = {t.name for t in b.manifest.tensors}
    assert {"w_then", "w_else", "w_loop"} <= names


@pytest.mark.packager
def test_mlp_50mb_bit_identical(tmp):
    import onnx

    import graphs

    model, feeds = graphs.mlp_bytes(50)
    path = tmp / "model.onnx"
    onnx.save(model, path)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    edgepack.package(path, output=tmp / "m.edgepack")
    out = load(tmp / "m.edgepack").run(feeds)
    assert np.array_equal(next(iter(out.values())), expected)


@pytest.mark.packager
def test_external_data_source(tmp):
    import onnx

    import graphs

    model, feeds = graphs.mlp(hidden=(256, 256))
    onnx.save(model, tmp / "ext.onnx", save_as_external_data=True, location="ext.data", size_threshold=1024)
    assert (tmp / "ext.data").exists()
    expected = plain(str(tmp / "ext.onnx"), feeds)
    edgepack.package(tmp / "ext.onnx", output=tmp / "e.edgepack")
    out = load(tmp / "e.edgepack").run(feeds)
    assert all(np.array_equal(out[k], expected[k]) for k in expected)


@pytest.mark.packager
def test_deterministic(tmp):
    import onnx

    import graphs

    model, _ = graphs.folded_initializers()
    onnx.save(model, tmp / "m.onnx")
    edgepack.package(tmp / "m.onnx", output=tmp / "a.edgepack")
    edgepack.package(tmp / "m.onnx", output=tmp / "b.edgepack", threads=1)
    assert (tmp / "a.edgepack").read_bytes() == (tmp / "b.edgepack").read_bytes()


def test_session_options_from_profile_match_plain_onnxruntime(cases):
    """Same session options give the same outputs: the profile's options reach onnxruntime."""
    from edgepack.runtime.ortconfig import session_options

    case = cases["mlp"]
    session = load(case.bundle, threads=1)
    expected = plain(case.model, case.feeds, session_options(session.profile, threads=1))
    assert np.array_equal(session.run(case.feeds)["a2"], expected["a2"])
