"""Errors only the packager raises: a model that does not convert, a pickle not trusted, a quantizer that
failed, a budget no recipe met, an optional package the packager needs. Each is an EdgepackError (the runtime's
base class, runtime/errors.py), so a caller catches every edgepack failure with one `except`; they live here
because the runtime, which goes onto the device, never raises them."""

from __future__ import annotations

from typing import Any

from edgepack.runtime.errors import EdgepackError, MissingDependency, ModelError

__all__ = ["ExportFailed", "ConversionMismatch", "UntrustedPickle", "QuantizationError", "UnquantizedWeights",
           "BudgetNotMet", "MissingExtra"]


class ExportFailed(ModelError):
    """A converter (torch.onnx, skl2onnx) could not turn the model into ONNX."""


class ConversionMismatch(ModelError):
    """The converted ONNX model's outputs differ from the source model's own beyond the tolerance."""


class UntrustedPickle(ModelError):
    """Loading the file would run code it contains, and the caller has not said they trust it."""


class MissingExtra(MissingDependency):
    """An optional dependency of the packager is needed; the message names the extra to install."""


class QuantizationError(EdgepackError):
    """A quantizer failed, or its result failed edgepack's checks (nothing quantized, does not load)."""


class UnquantizedWeights(QuantizationError):
    """Weights the chosen mode targets were left in float; `nodes` names the nodes that hold them."""

    def __init__(self, message: str, nodes: list[str]):
        self.nodes = nodes
        super().__init__(message)


class BudgetNotMet(EdgepackError):
    """No recipe the budget search tried met every budget. `best` is the trial that came closest (a dict as the
    search report records trials), `misses` maps each budget it missed to {"value", "limit"}, `trials` lists
    every trial."""

    def __init__(self, message: str, best: dict[str, Any] | None = None, misses: dict[str, Any] | None = None,
                 trials: list[Any] | None = None):
        self.best, self.misses, self.trials = best, misses or {}, trials or []
        super().__init__(message)
