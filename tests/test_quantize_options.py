"""Quantization options: checked up front (before the model is read), each mistake its own message; defaults
from the target profile, the user's choice over them."""

import dataclasses
import re

import numpy as np
import pytest

import edgepack
from edgepack.packager.quantize import make_options, resolve
from edgepack.runtime.errors import ModelError, OptionError
from edgepack.runtime.profile import load_profile

import quant_models

X86 = load_profile("generic-x86-64")
ARM = load_profile("generic-aarch64")


def _resolve(mode, profile=X86, **kw):
    return resolve(make_options(mode, **kw), profile)


@pytest.mark.parametrize("mode, kw, message", [
    ("int8-static", {}, "int8-static needs calibration data"),
    ("int8-fast", {}, "mode must be one of fp16, int4-weight, int8-dynamic, int8-static, none; got 'int8-fast'"),
    ("int8-dynamic", {"block_size": 64}, "block-size does not apply to --quantize int8-dynamic"),
    ("int8-dynamic", {"calibration": "c.npz"}, "calibration does not apply to --quantize int8-dynamic"),
    ("int4-weight", {"per_channel": True}, "per-channel does not apply to --quantize int4-weight"),
    ("int4-weight", {"block_size": 48}, "block-size must be a power of two of at least 16"),
    ("int4-weight", {"block_size": 8}, "block-size must be a power of two of at least 16"),
    ("int4-weight", {"accuracy_level": 5}, "accuracy-level must be 0 to 4"),
    ("int4-weight", {"op_types": ["Conv"]}, "int4-weight cannot quantize op types ['Conv']"),
    ("int8-dynamic", {"op_types": ["Foo"]}, "int8-dynamic cannot quantize op types ['Foo']"),
    ("int8-dynamic", {"op_types": []}, "op-types is empty"),
    ("int8-dynamic", {"weight_type": "int4"}, "weight-type must be one of int8, uint8; got 'int4'"),
    ("int8-dynamic", {"per_channel": "yes"}, "per-channel must be true or false, got 'yes'"),
    ("int8-dynamic", {"block_sise": 32},
     "unknown quantization option(s) ['block_sise']; known: mode, calibration, method"),
    ("none", {"allow_unquantized": True}, "need a --quantize mode"),
])
def test_bad_options(mode, kw, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        _resolve(mode, **kw)


def test_int8_static_without_calibration_suggests_dynamic():
    with pytest.raises(OptionError) as e:
        _resolve("int8-static")
    assert "int8-dynamic" in str(e.value)


def test_type_pair_onnxruntime_cannot_run(tmp):
    calib = quant_models.random_npz(str(tmp / "c.npz"), x=(4,))
    with pytest.raises(OptionError, match="int8 activations with uint8 weights"):
        _resolve("int8-static", calibration=calib, activation_type="int8", weight_type="uint8")
    # the profile's weight type gives way to the user's activation type instead of failing
    profile = dataclasses.replace(X86, quantization=dataclasses.replace(X86.quantization, weight_type="uint8"))
    assert _resolve("int8-static", profile, calibration=calib, activation_type="int8").weight_type == "int8"


def test_missing_calibration_path_is_caught_before_the_model_is_read(tmp):
    with pytest.raises(OptionError, match="no such calibration file"):
        edgepack.package(str(tmp / "missing.onnx"), str(tmp / "b.edgepack"), quantize="int8-static",
                         calibration=str(tmp / "nope.npz"))
    with pytest.raises(ModelError):  # the options were fine: now the model is read, and it is missing
        edgepack.package(str(tmp / "missing.onnx"), str(tmp / "b.edgepack"), quantize="int8-dynamic")


def test_defaults_come_from_the_profile_and_the_user_overrides_them(tmp):
    calib = quant_models.random_npz(str(tmp / "c.npz"), x=(4,))
    x86 = _resolve("int8-static", calibration=calib)
    arm = _resolve("int8-static", ARM, calibration=calib)
    assert (x86.reduce_range, arm.reduce_range) == (True, False)   # x86 without VNNI: 7-bit weights
    q = X86.quantization
    assert (x86.format, x86.activation_type, x86.weight_type, x86.per_channel) == (
        q.format, q.activation_type, q.weight_type, q.per_channel)
    assert (x86.format, x86.weight_type, x86.per_channel) == ("qdq", "int8", True)
    assert x86.op_types == ("Conv", "MatMul", "Gemm") and x86.method == "minmax"
    mine = _resolve("int8-static", calibration=calib, reduce_range=False, per_channel=False, format="qoperator",
                    op_types=["Conv", "MatMul", "Add"], method="entropy")
    assert (mine.reduce_range, mine.per_channel, mine.format, mine.method) == (False, False, "qoperator", "entropy")
    assert mine.op_types == ("Conv", "MatMul", "Add")
    assert _resolve("int8-dynamic").op_types == ("MatMul", "Gemm", "Gather")
    int4 = _resolve("int4-weight")
    assert (int4.block_size, int4.accuracy_level, int4.symmetric) == (32, 4, False)


def test_record_names_no_folders(tmp):
    calib = quant_models.random_npz(str(tmp / "calib.npz"), x=(4,))
    record = _resolve("int8-static", calibration=calib).record()
    assert record["calibration"] == "calib.npz" and str(tmp) not in str(record)
    assert record["op_types"] == ["Conv", "MatMul", "Gemm"]


def test_samples_that_do_not_fit_the_model(tmp):
    model = quant_models.constant_weights()
    np.savez(tmp / "f64.npz", x=np.zeros((4, 3, 8, 8)))
    np.savez(tmp / "rank.npz", x=np.zeros((4, 3, 8), np.float32))
    np.savez(tmp / "name.npz", input=np.zeros((4, 3, 8, 8), np.float32))
    for name, message in [("f64", "is float64, the model's input is float32"),
                          ("rank", r"has shape \[1, 3, 8\], the model's input takes \['\?', 3, 8, 8\]"),
                          ("name", "the data lacks \\['x'\\]")]:
        with pytest.raises(OptionError, match=message):
            edgepack.package(model, str(tmp / "b.edgepack"), quantize="int8-static",
                             calibration=str(tmp / f"{name}.npz"))
        assert not (tmp / "b.edgepack").exists()


def test_options_object_and_excluded_nodes(tmp):
    from edgepack.packager.quantize import QuantizeOptions

    model = quant_models.batched_weight()
    opts = QuantizeOptions(mode="int4-weight", exclude_nodes=("batched",))
    result = edgepack.package(model, str(tmp / "b.edgepack"), quantize=opts)
    q = result.report["quantization"]
    assert q["quantized"] == {"MatMulNBits uint4": 1} and q["float"] == {"MatMul": 1} and q["float_targeted"] == []
    with pytest.raises(OptionError, match="either as a QuantizeOptions or in quantize_options"):
        edgepack.package(model, str(tmp / "b.edgepack"), quantize=opts, quantize_options={"block_size": 64})
    with pytest.raises(OptionError, match=r"exclude-nodes names \['batchd'\], which the model does not have"):
        edgepack.package(model, str(tmp / "b.edgepack"), quantize="int4-weight",
                         quantize_options={"exclude_nodes": ["batchd"]})
    with pytest.raises(OptionError, match="exclude-nodes must be a list of names, got 'batched'"):
        edgepack.package(model, str(tmp / "b.edgepack"), quantize="int4-weight",
                         quantize_options={"exclude_nodes": "batched"})
