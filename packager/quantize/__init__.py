"""Quantization: int8-static (calibrated), int8-dynamic, int4-weight, fp16, on onnxruntime's quantizers, with
the graph preparation they need on real models and checks that never take their word for it.

    opts = resolve(make_options("int8-static", calibration="calib.npz"), profile)
    result = quantize_model(model, opts, profile)       # QuantizeResult: model, step, report, warnings
    fidelity, speed = compare(model, result.model, samples, held_out=True, folder=tmp)
"""

from .options import MODES, QuantizeOptions, make_options, resolve
from .run import QuantizeResult, quantize_model

__all__ = ["MODES", "QuantizeOptions", "QuantizeResult", "make_options", "quantize_model", "resolve"]
