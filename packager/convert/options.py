"""How a PyTorch or scikit-learn model becomes ONNX, and how closely the result must match the source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import Options

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
class ConvertOptions(Options):
    """Conversion settings. Only PyTorch and scikit-learn models take them; build(ConvertOptions, dict) makes them
    from a dict of these fields (packager.options)."""

    opset: int = DEFAULT_OPSET                      # ONNX opset of the converted graph
    dynamic_batch: bool = True                      # torch: the first axis of every input is dynamic
    input_names: tuple[str, ...] | None = None      # default: forward()'s parameter names; sklearn: ("X",)
    output_names: tuple[str, ...] | None = None     # torch only; default: "output" or output_0, output_1...
    rtol: float = 1e-3                              # check: |onnx - source| <= atol + rtol * |source|
    atol: float = 1e-5
    trust_pickle: bool = False                      # allow files whose loading runs code (.pkl, .joblib)

    WHAT: ClassVar[str] = "convert"
    ACCEPTS: ClassVar[dict[str, str]] = {
        "opset": f"an integer from {MIN_OPSET} to {MAX_OPSET}", "rtol": "a finite number >= 0",
        "atol": "a finite number >= 0", "input_names": "a list of distinct non-empty names",
        "output_names": "a list of distinct non-empty names"}

    def _check(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise self.refuse("opset")
        for key in ("rtol", "atol"):
            if getattr(self, key) < 0:
                raise self.refuse(key)
        for key in ("input_names", "output_names"):
            names = getattr(self, key)
            if names is not None and len(set(names)) != len(names):
                raise self.refuse(key)

    def is_default(self) -> bool:
        return self == ConvertOptions()
