"""Activation ranges for int8-static, computed once and reused by every quantization of the same model.

Calibration runs the model on every calibration sample; the ranges it finds depend only on the model, the
samples and the method, not on which nodes are then quantized. So a search that tries many sets of nodes
calibrates once, over the widest set of op types it will try, and hands the ranges to onnxruntime's
quantizer for each trial (`quantize_static(calibration_cache_path=...)`, onnxruntime 1.26 and later; with an
older onnxruntime each quantization calibrates again, with the same result, and `Ranges.reused` says so).

    ranges = compute_ranges(prepared_model, opts, samples, folder, progress=bar.update)
    model, details = static.quantize(prepared_model, opts, samples, folder, ranges=ranges)
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from collections.abc import Callable

import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.text import error_line

from .. import modelfiles
from ..datasets import Samples
from ..progress import advance

# onnxruntime's calibration method for each of QuantizeOptions.method's names
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


def cache_supported() -> bool:
    """Whether this onnxruntime's quantize_static takes precomputed ranges."""
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


class SampleReader(CalibrationDataReader):
    """Feeds the calibration samples one by one, each as the model takes it; `on_sample(i, n)` after each."""

    def __init__(self, feeds: list[dict], on_sample: Callable[[int, int], None] | None = None):
        self._feeds = feeds
        self._it = iter(enumerate(feeds))
        self._on_sample = on_sample

    def get_next(self) -> dict | None:
        i, feeds = next(self._it, (None, None))
        if i is not None:
            (self._on_sample or advance)(i + 1, len(self._feeds))  # default: the running phase's count
        return feeds

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(enumerate(self._feeds[start_index:end_index], start_index))


@dataclass(frozen=True)
class Ranges:
    """Calibrated activation ranges, stored as onnxruntime's calibration cache file."""

    path: str | None             # the cache file (JSON), in a private temporary folder; None when not reused
    method: str                  # minmax, entropy or percentile
    op_types: tuple[str, ...]    # the op types whose tensors were calibrated
    samples: int                 # how many samples were run
    reused: bool                 # False: this onnxruntime cannot take them; each quantization calibrates again


def compute_ranges(model: onnx.ModelProto, method: str, op_types: tuple[str, ...], samples: Samples, folder: str,
                   progress: Callable[[int, int], None] | None = None) -> Ranges:
    """Calibrate the tensors of `op_types` in `model` (prepared for quantization) on `samples`, once."""
    from onnxruntime.quantization.calibrate import save_tensors_data

    if not cache_supported():
        return Ranges(None, method, tuple(op_types), len(samples), False)
    source = modelfiles.save(model, folder, "calibrated.onnx")
    path = os.path.join(folder, "ranges.json")
    try:
        with modelfiles.quiet():
            calibrator = create_calibrator(source, list(op_types),
                                           augmented_model_path=os.path.join(folder, "augmented.onnx"),
                                           calibrate_method=METHODS[method], providers=["CPUExecutionProvider"])
            calibrator.collect_data(SampleReader(samples.feeds, progress))
            save_tensors_data(calibrator.compute_data(), path)
    except Exception as e:
        raise QuantizationError(f"calibration failed in onnxruntime: {error_line(e)}; check the calibration "
                                "samples, or exclude the node it names (--exclude-nodes)") from None
    return Ranges(path, method, tuple(op_types), len(samples), True)
