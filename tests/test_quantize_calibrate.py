"""Activation ranges calibrated once and reused: the quantized model is byte for byte the one onnxruntime's
quantizer writes when it calibrates itself, for any subset of the calibrated op types and nodes, and a
quantization with reused ranges does not calibrate again."""

import dataclasses

import numpy as np
import onnx
import pytest

from edgepack.packager.datasets import Samples
from edgepack.packager import modelfiles
from edgepack.packager.quantize import make_options, resolve
from edgepack.packager.quantize.calibrate import cache_supported
from edgepack.packager.quantize.run import Prepared, prepare_once, quantize_prepared
from edgepack.runtime.profile import load_profile

import quant_models

pytestmark = pytest.mark.packager

X86 = load_profile("generic-x86-64")


@pytest.fixture
def cnn(tmp):
    model = quant_models.opset11_cnn()
    calib = quant_models.random_npz(str(tmp / "calib.npz"), count=24, x=(3, 8, 8))
    path = str(tmp / "m.onnx")
    onnx.save(model, path)
    return model, calib


def _opts(calib, **kw):
    return resolve(make_options("int8-static", calibration=calib, **kw), X86)


@pytest.mark.parametrize("kw", [{}, {"op_types": ("Conv",)}, {"exclude_nodes": ("Relu_r",)},
                                {"method": "percentile"}])
def test_reused_ranges_give_the_model_inline_calibration_gives(cnn, kw):
    model, calib = cnn
    widest = _opts(calib, op_types=("Conv", "Gemm", "Relu", "Flatten"), method=kw.get("method"))
    narrow = dataclasses.replace(widest, **{k: v for k, v in kw.items() if k != "method"})
    with modelfiles.workdir() as folder:
        once = prepare_once(model, widest, folder)              # ranges of every op type the search may use
        assert once.ranges is not None and once.ranges.samples == 24 and once.ranges.reused == cache_supported()
        with modelfiles.workdir() as a, modelfiles.workdir() as b:
            reused, _, _ = quantize_prepared(once, narrow, a)
            inline, _, _ = quantize_prepared(Prepared(once.model, once.report, once.calibration), narrow, b)
    assert reused.SerializeToString() == inline.SerializeToString()


@pytest.mark.skipif(not cache_supported(), reason="this onnxruntime's quantize_static takes no precomputed ranges")
def test_reused_ranges_do_not_calibrate_again(cnn):
    model, calib = cnn
    opts = _opts(calib, op_types=("Conv", "Gemm", "Relu"))
    with modelfiles.workdir() as folder:
        once = prepare_once(model, opts, folder)
        # other samples beside the same ranges: a quantizer that calibrated again would scale differently
        zeros = Samples([{k: np.zeros_like(v) for k, v in f.items()} for f in once.calibration.feeds], None, "zeros")
        with modelfiles.workdir() as a, modelfiles.workdir() as b:
            reused, _, _ = quantize_prepared(dataclasses.replace(once, calibration=zeros), opts, a)
            fresh, _, _ = quantize_prepared(once, opts, b)
            recalibrated, _, _ = quantize_prepared(Prepared(once.model, once.report, zeros), opts, b)
    assert reused.SerializeToString() == fresh.SerializeToString()
    assert recalibrated.SerializeToString() != fresh.SerializeToString()


@pytest.mark.skipif(not cache_supported(), reason="without precomputed ranges, each quantization calibrates")
def test_calibration_reports_progress_per_sample(cnn):
    model, calib = cnn
    seen = []
    with modelfiles.workdir() as folder:
        prepare_once(model, _opts(calib), folder, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 24) for i in range(1, 25)]


def test_dynamic_mode_prepares_without_ranges(tmp):
    model = quant_models.opset11_cnn()
    with modelfiles.workdir() as folder:
        once = prepare_once(model, resolve(make_options("int8-dynamic"), X86), folder)
    assert once.ranges is None and once.calibration is None
