"""edgepack: package a neural network for an edge device, and run it there.

    import edgepack
    edgepack.package("model.onnx", output="model.edgepack", target="raspberry-pi-4")
    session = edgepack.load("model.edgepack")
    report = edgepack.measure("model.edgepack", baseline="model.onnx")

The packager (edgepack.packager) is imported on first use, so `import edgepack.runtime` on a device pulls in
only numpy, onnxruntime and zstandard.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from edgepack.runtime import load  # the runtime is imported with edgepack anyway (its errors are ours)
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


def measure(bundle: str | os.PathLike, baseline: str | os.PathLike | None = None, *, runs: int = 100,
            inputs: str | os.PathLike | None = None, repeat: int = 1, target: str | None = None,
            force: bool = False, lean: bool | None = None, timeout: float = 3600,
            progress: Callable[[str, dict[str, Any]], None] | None = None,
            progress_s: float = 2.0, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, Any]:
    """What a bundle costs on this device, against plain onnxruntime on `baseline` (an .onnx), measured in
    fresh processes. See edgepack.runtime.measure.measure."""
    from edgepack.runtime.measure import measure as _measure  # its child-process machinery only when used

    return _measure(bundle, baseline, runs=runs, inputs=inputs, repeat=repeat, target=target, force=force,
                    lean=lean, timeout=timeout, progress=progress, progress_s=progress_s, shapes=shapes)
