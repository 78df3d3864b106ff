"""Size per layer, recorded at package time: each layer's source bytes, and what the packaged model holds for
it (quantized weights with their scales; nothing for a BatchNormalization folded into its Conv)."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edgepack
from edgepack.runtime import open_bundle

pytestmark = pytest.mark.packager


@pytest.fixture(scope="module")
def bn_files(digits_cnn):
    folder = digits_cnn["folder"]
    np.savez(folder / "calib_layers.npz", x=digits_cnn["calib"][:32])
    return digits_cnn["path_bn"], str(folder / "calib_layers.npz")


def _manifest_report(path):
    with open_bundle(path) as b:
        return b.manifest.raw["report"], {t.name: t.length for t in b.manifest.tensors}


def test_quantized_layers_before_and_after(bn_files, tmp):
    path, calib = bn_files
    out = tmp / "q.edgepack"
    edgepack.package(path, str(out), quantize="int8-static", calibration=calib)
    report, stored = _manifest_report(out)
    rows = {r["node"]: r for r in report["layers"]}
    source = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t).nbytes for t in source.graph.initializer}
    for node in source.graph.node:
        if node.op_type in ("Conv", "Gemm", "BatchNormalization"):
            row = rows[node.name]
            assert row["source_bytes"] == sum(inits[i] for i in node.input if i in inits)
            if node.op_type == "BatchNormalization":
                assert "bytes" not in row   # folded into the Conv before it
            else:
                assert row["dtype"] == "int8" and row["bytes"] < row["source_bytes"]
                weight = [t for t in row["tensors"] if t.endswith("_quantized")]   # QDQ names the int8 weight so
                assert weight and all(t in stored for t in weight)              # (scalars stay in the graph)
    kept = [r for r in report["layers"] if "bytes" in r]
    assert sum(r["bytes"] for r in kept) < 0.3 * sum(r["source_bytes"] for r in kept)   # int8: a quarter, plus scales


def test_pruned_layers_shrink(bn_files, tmp):
    path, calib = bn_files
    out = tmp / "p.edgepack"
    edgepack.package(path, str(out), prune="channels:0.5")
    report, _ = _manifest_report(out)
    convs = [r for r in report["layers"] if r["op"] == "Conv"]
    assert convs and all(r["dtype"] == "float32" for r in convs)
    assert sum(r["bytes"] for r in convs) < 0.6 * sum(r["source_bytes"] for r in convs)


def test_untouched_bundle_records_no_layers(bn_files, tmp):
    path, _ = bn_files
    edgepack.package(path, str(tmp / "f.edgepack"))
    report, _ = _manifest_report(tmp / "f.edgepack")
    assert "layers" not in report
