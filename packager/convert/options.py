"""How a PyTorch or scikit-learn model becomes ONNX, and how closely the result must match the source."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from edgepack.runtime.errors import OptionError

# The ONNX opset written by default. 18 is the opset torch.onnx's operator library (torchlib) is written
# in, so the exporter runs no version-conversion pass (the step its own warning says "may not be
# successful"); onnxruntime runs it from 1.14 on, and it has what the quantizers need (per-axis
# Q/DQ from 13). skl2onnx writes it too.
DEFAULT_OPSET = 18
# 13: per-channel QuantizeLinear/DequantizeLinear. 21: the newest every onnxruntime edgepack's runtime
# supports (>= 1.20) can load.
MIN_OPSET, MAX_OPSET = 13, 21
# scikit-learn's operators (TreeEnsembleClassifier, LinearClassifier, ...) live in the ai.onnx.ml domain.
# Pinned rather than left to skl2onnx's default, so the graph does not change with the skl2onnx version.
ML_OPSET = 3


@dataclass(frozen=True)
class ConvertOptions:
    """Conversion settings. Only PyTorch and scikit-learn models take them."""

    opset: int = DEFAULT_OPSET                      # ONNX opset of the converted graph
    dynamic_batch: bool = True                      # torch: the first axis of every input is dynamic
    input_names: tuple[str, ...] | None = None      # default: forward()'s parameter names; sklearn: ("X",)
    output_names: tuple[str, ...] | None = None     # torch only; default: "output" or output_0, output_1...
    rtol: float = 1e-3                              # check: |onnx - source| <= atol + rtol * |source|
    atol: float = 1e-5
    trust_pickle: bool = False                      # allow files whose loading runs code (.pkl, .joblib)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | ConvertOptions | None) -> ConvertOptions:
        """Validate options given as a dict (unknown keys are rejected) or pass a ConvertOptions through."""
        if options is None:
            return cls()
        if isinstance(options, ConvertOptions):
            return options._validated()
        if not isinstance(options, Mapping):
            raise OptionError(f"convert options must be a dict or ConvertOptions, got {type(options).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise OptionError(f"unknown convert option(s) {unknown}; known: {known}")
        values = dict(options)
        for key in ("input_names", "output_names"):
            if values.get(key) is not None:
                values[key] = _names(key, values[key])
        return cls(**values)._validated()

    def _validated(self) -> ConvertOptions:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise OptionError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {self.opset!r}")
        for key in ("rtol", "atol"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (math.isfinite(value) and value >= 0):
                raise OptionError(f"{key} must be a finite number >= 0, got {value!r}")
        for key in ("dynamic_batch", "trust_pickle"):
            if not isinstance(getattr(self, key), bool):
                raise OptionError(f"{key} must be True or False, got {getattr(self, key)!r}")
        for key in ("input_names", "output_names"):
            if getattr(self, key) is not None:
                _names(key, getattr(self, key))
        return self

    def is_default(self) -> bool:
        return self == ConvertOptions()


def _names(key: str, value: Any) -> tuple[str, ...]:
    if (not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value)
            or len(set(value)) != len(value)):
        raise OptionError(f"{key} must be a list of distinct non-empty names, got {value!r}")
    return tuple(value)
