"""Issue 19, finding 2: a second raw_data under a 5-byte tag. The manifest's tensor W (what tensor(),
verify() and a signer see) is [1, 2, 3, 4]; protobuf keeps the last raw_data it reads, so onnxruntime would
compute with [666, ...]. The graph walker now refuses the tag, so the bundle never loads."""

import numpy as np
import onnxruntime as ort
import pytest

from edgepack.runtime import errors as E
from edgepack.runtime import load, open_bundle

import bundles
import wire_encoding as wire
from conftest import write

REAL = np.array([1, 2, 3, 4], np.float32).tobytes()
FAKE = np.full(4, 666, np.float32).tobytes()


def _model(hidden_tag: dict) -> bytes:
    w = wire.tensor("W", [4], body=wire.ld(9, REAL) + wire.ld(9, FAKE, **hidden_tag))
    return wire.model([wire.node("Mul", ["x", "W"], ["y"])], initializers=[w])


@pytest.mark.parametrize("hidden_tag", [{"high": 1 << 32}, {"high": 0xF << 32}, {}],
                         ids=["bit 32", "bits 32-35", "a plain second raw_data"])
def test_a_second_raw_data_is_refused(tmp, mlp_bundle, hidden_tag):
    serialized = _model(hidden_tag)
    graph, splice = wire.splice_cut(serialized, REAL)
    manifest, _, _ = bundles.decoded(write(tmp, mlp_bundle[0], "src.edgepack"))
    entry = {"name": "W", "dtype": "float32", "shape": [4], "binding": "inline", "splice": splice}
    path = write(tmp, wire.bundle(manifest, graph, [(entry, REAL)]))
    with open_bundle(path) as b:  # what an inspector or a signer sees: consistent and hashed
        assert b.verify() == []
        np.testing.assert_array_equal(b.tensor("W"), [1, 2, 3, 4])
    with pytest.raises(E.InvalidGraph, match="wider than 32 bits|appears twice|raw data that no manifest"):
        load(path)


def test_onnxruntime_computes_with_the_hidden_bytes():
    """The attack is real: onnxruntime given the model itself multiplies by 666."""
    session = ort.InferenceSession(_model({"high": 1 << 32}), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": np.ones(4, np.float32)})[0]
    np.testing.assert_array_equal(got, [666] * 4)
