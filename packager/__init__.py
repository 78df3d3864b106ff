"""edgepack.packager: turn a model into a compressed, verifiable bundle for one target device.

May import edgepack.runtime; the runtime never imports the packager. The names below are imported on first
use, so that a light module of the packager (a report formatter, the sample loader) does not pull in onnx.
"""

from typing import Any

from .errors import (
    BudgetNotMet,
    ConversionMismatch,
    ExportFailed,
    MissingExtra,
    QuantizationError,
    UnquantizedWeights,
    UntrustedPickle,
)

__all__ = ["package", "PackageResult", "ConvertOptions", "Budget", "ExportFailed", "ConversionMismatch",
           "UntrustedPickle", "QuantizationError", "UnquantizedWeights", "BudgetNotMet", "MissingExtra"]


def __getattr__(name: str) -> Any:
    if name in ("package", "PackageResult"):
        from . import api

        return getattr(api, name)
    if name == "Budget":
        from .search.budget import Budget

        return Budget
    if name == "ConvertOptions":
        from .convert.options import ConvertOptions

        return ConvertOptions
    raise AttributeError(f"module 'edgepack.packager' has no attribute {name!r}")
