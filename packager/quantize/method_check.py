"""Whether a calibration method other than minmax changed anything.

onnxruntime's entropy and percentile calibrators can end with exactly the ranges minmax finds (few samples,
activations whose histogram has no tail to cut): the quantized model is then byte-identical to the minmax
one. Recording "entropy" for such a bundle would claim an effect it did not have, so the packaged model is
compared with a minmax quantization of the same prepared model, and the report says what happened.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import onnx

from ..datasets import Samples
from .options import QuantizeOptions


def _tensors(model: onnx.ModelProto) -> dict[str, bytes]:
    return {t.name: t.SerializeToString() for t in model.graph.initializer}


def same_as_minmax(prepared: onnx.ModelProto, result: onnx.ModelProto, opts: QuantizeOptions,
                   calibration: Samples, folder: str) -> bool:
    """Whether quantizing `prepared` with minmax gives `result`'s tensors byte for byte."""
    from . import static

    sub = os.path.join(folder, "minmax")
    os.makedirs(sub, exist_ok=True)
    other, _ = static.quantize(prepared, dataclasses.replace(opts, method="minmax"), calibration, sub)
    return _tensors(other) == _tensors(result)


def check_method(prepared: onnx.ModelProto, result: onnx.ModelProto, opts: QuantizeOptions,
                 calibration: Samples | None, folder: str, details: dict[str, Any]) -> str | None:
    """For int8-static with a method other than minmax: when it had no effect, note it in `details` (method
    becomes "minmax", method_asked the one given) and return the warning to give; else None."""
    if opts.mode != "int8-static" or opts.method == "minmax" or calibration is None:
        return None
    if not same_as_minmax(prepared, result, opts, calibration, folder):
        details["method_effect"] = "ranges differ from minmax's"
        return None
    details.update(method="minmax", method_asked=opts.method,
                   method_effect=f"none: {opts.method} found the same ranges as minmax on these samples")
    return (f"--calibration-method {opts.method} had no effect: it found the same activation ranges as minmax on "
            f"these {len(calibration)} samples (the quantized tensors are byte-identical), so the bundle records "
            "minmax; more or more varied calibration samples may make a difference")
