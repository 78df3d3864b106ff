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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from edgepack.runtime import load  # the runtime is imported with edgepack anyway (its errors are ours)
from edgepack.runtime.errors import EdgepackError
from edgepack.version import __version__

if TYPE_CHECKING:
    from edgepack.packager.api import PackageResult
    from edgepack.packager.convert.options import ConvertOptions
    from edgepack.packager.prune.options import PruneOptions
    from edgepack.packager.quantize.options import QuantizeOptions
    from edgepack.packager.search import Budget
    from edgepack.runtime.profile import Profile

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


def __dir__() -> list[str]:  # the packager's errors, which __getattr__ provides, are part of the module
    return sorted(set(globals()) | set(__all__))


def package(model: Any, output: str | os.PathLike, target: str | os.PathLike | Profile | None = None, *,
            level: int | None = None, frame_bytes: int | None = None, threads: int | None = None,
            example_inputs: Any = None, convert: ConvertOptions | Mapping[str, Any] | None = None,
            prune: str | PruneOptions | Mapping[str, Any] | None = None, prune_scope: str | None = None,
            prune_criterion: str | None = None, prune_round_to: int | None = None, reconstruct: bool = False,
            quantize: str | QuantizeOptions | Mapping[str, Any] | None = None,
            calibration: str | os.PathLike | None = None, eval_data: Any = None,
            quantize_options: Mapping[str, Any] | None = None, budget: Budget | Mapping[str, Any] | None = None,
            progress: bool | None = None, shapes: dict[str, tuple[int, ...]] | None = None,
            output_kinds: dict[str, str] | list[str] | None = None, layout: str | None = None) -> PackageResult:
    """Package `model` (a path, an onnx.ModelProto, ...) into a bundle at `output`; the parameters are those of
    edgepack.packager.package, which documents them (the packager is imported here, on first use). Each step's
    options (convert, prune, quantize, budget) are its options object or a dict of its fields."""
    from edgepack.packager.api import package as _package

    return _package(model, output, target, level=level, frame_bytes=frame_bytes, threads=threads,
                    example_inputs=example_inputs, convert=convert, prune=prune, prune_scope=prune_scope,
                    prune_criterion=prune_criterion, prune_round_to=prune_round_to, reconstruct=reconstruct,
                    quantize=quantize, calibration=calibration, eval_data=eval_data,
                    quantize_options=quantize_options, budget=budget, progress=progress, shapes=shapes,
                    output_kinds=output_kinds, layout=layout)


def measure(bundle: str | os.PathLike, baseline: str | os.PathLike | None = None, *, runs: int = 100,
            inputs: str | os.PathLike | None = None, repeat: int = 1, target: str | None = None,
            force: bool = False, lean: bool | None = None, timeout: float = 3600,
            progress: Callable[[str, dict[str, Any]], None] | None = None,
            progress_s: float = 2.0, shapes: dict[str, tuple[int, ...]] | None = None,
            public_key: str | os.PathLike | bytes | None = None) -> dict[str, Any]:
    """What a bundle costs on this device, against plain onnxruntime on `baseline` (an .onnx), measured in
    fresh processes. See edgepack.runtime.measure.measure."""
    from edgepack.runtime.measure import measure as _measure  # its child-process machinery only when used

    return _measure(bundle, baseline, runs=runs, inputs=inputs, repeat=repeat, target=target, force=force,
                    lean=lean, timeout=timeout, progress=progress, progress_s=progress_s, shapes=shapes,
                    public_key=public_key)
