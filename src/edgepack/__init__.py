"""edgepack: package a neural network for an edge device, and run it there.

    import edgepack
    edgepack.package("model.onnx", output="model.edgepack", target="raspberry-pi-4")
    session = edgepack.load("model.edgepack")
    report = edgepack.measure("model.edgepack", baseline="model.onnx")

The packager (edgepack.packager) is imported on first use, so `import edgepack.runtime` on a device pulls in
only numpy, onnxruntime and zstandard.
"""

from __future__ import annotations

from typing import Any

from edgepack.runtime.errors import EdgepackError

__version__ = "0.1.0"

# The packager's errors (edgepack.packager.errors), imported on first use so that `import edgepack.runtime`
# on a device does not import the packager.
PACKAGER_ERRORS = ("ExportFailed", "ConversionMismatch", "UntrustedPickle", "QuantizationError",
                   "UnquantizedWeights", "BudgetNotMet", "MissingExtra")

__all__ = ["package", "load", "measure", "EdgepackError", "__version__", "ExportFailed", "ConversionMismatch",
           "UntrustedPickle", "QuantizationError", "UnquantizedWeights", "BudgetNotMet", "MissingExtra"]


def __getattr__(name: str) -> Any:
    if name in PACKAGER_ERRORS:
        from edgepack.packager import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'edgepack' has no attribute {name!r}")


def package(model: Any, output: Any, target: Any = None, **options: Any) -> Any:
    """Package `model` (a path, an onnx.ModelProto, ...) into a bundle at `output`. See edgepack.packager."""
    from edgepack.packager import package as _package

    return _package(model, output=output, target=target, **options)


def load(path: Any, target: Any = None, **options: Any) -> Any:
    """Open a bundle and build a session on it. See edgepack.runtime.load."""
    from edgepack.runtime import load as _load

    return _load(path, target=target, **options)


def measure(bundle: Any, baseline: Any = None, **options: Any) -> Any:
    """What a bundle costs on this device, against plain onnxruntime on `baseline` (an .onnx), measured in
    fresh processes. See edgepack.runtime.costs.measure."""
    from edgepack.runtime.costs import measure as _measure

    return _measure(bundle, baseline, **options)
