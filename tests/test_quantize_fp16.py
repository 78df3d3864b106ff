"""fp16: fp32 inputs and outputs kept, fp32 kept where values overflow fp16, and a result that loads here."""

import numpy as np
import onnx
import onnx.reference
import onnxruntime as ort

import edgepack
from edgepack.runtime import load

import quant_models


def _reference(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _exact(model, x):
    with np.errstate(all="ignore"):
        return onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0]


def test_fp16_keeps_fp32_io_and_halves_the_weights(tmp):
    model = quant_models.opset11_cnn()
    out = tmp / "h.edgepack"
    result = edgepack.package(model, str(out), quantize="fp16")
    q = result.report["quantization"]
    assert q["quantized"] == {"Conv float16": 1, "Gemm float16": 1}
    assert q["bytes_after"].get("float32", 0) == 0 and q["bytes_after"]["float16"] * 2 == q["bytes_before"]["float32"]
    session = load(out)
    assert [s.dtype for s in session.inputs] == [np.float32] and [s.dtype for s in session.outputs] == [np.float32]
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = session.run({"x": x})["y"]
    assert y.dtype == np.float32 and np.allclose(y, _reference(model, {"x": x}), rtol=0.01, atol=0.01)
    assert any("without a GPU provider" in w for w in result.report["warnings"])


def test_fp16_keeps_overflowing_activations_in_fp32_when_samples_show_them(tmp):
    model = quant_models.fp16_overflow()
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    ref = _reference(model, {"x": x})
    calib = quant_models.random_npz(str(tmp / "calib.npz"), count=8, x=(16,))

    # onnxruntime's CPU kernels compute most fp16 ops in fp32 and hide the overflow, a GPU would not: the
    # onnx reference evaluator computes each node in the type the graph says
    blind = edgepack.package(model, str(tmp / "blind.edgepack"), quantize="fp16")
    assert blind.report["quantization"]["activations_checked"] is False
    assert not np.isfinite(_exact(quant_models.bundle_model(tmp / "blind.edgepack"), x)).all()

    out = tmp / "h.edgepack"
    result = edgepack.package(model, str(out), quantize="fp16", calibration=calib)
    kept = result.report["quantization"]["fp32_nodes"]["activations_overflow"]
    assert len(kept) == 2                       # the MatMul producing ~1e6 and the Mul reading it
    for y in (_exact(quant_models.bundle_model(out), x), load(out).run({"x": x})["y"]):
        assert np.isfinite(y).all() and np.allclose(y, ref, rtol=0.02, atol=0.05)


def test_non_finite_outputs_are_flagged(tmp):
    # what fp16 overflow looks like on a GPU (this CPU's kernels hide it): the fidelity check flags inf/NaN
    from onnx import TensorProto, helper

    from edgepack.packager.fidelity.check import check
    from edgepack.runtime.profile import load_profile

    def model(op):
        nodes = [helper.make_node(op, ["x", "k"], ["y"])]
        k = helper.make_tensor("k", TensorProto.FLOAT, [], [0.0 if op == "Div" else 1.0])
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("x", "y")]
        return helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], [k]),
                                 opset_imports=[helper.make_opsetid("", 17)])

    eval_data = quant_models.random_npz(str(tmp / "eval.npz"), count=4, x=(4,))
    profile = load_profile("generic-x86-64")
    fidelity, _, warnings = check(model("Mul"), model("Div"), eval_data, None, profile, profile)
    assert fidelity["outputs"]["y"]["cosine_min"] is None and fidelity["outputs"]["y"]["nonfinite"] == 16
    assert "output 'y': the packaged model produces 16 non-finite values (inf or NaN) where the original's are " \
           "finite" in warnings
    fidelity, _, warnings = check(model("Mul"), model("Mul"), eval_data, None, profile, profile)
    assert fidelity["outputs"]["y"]["cosine_min"] == 1.0 and warnings == []
