"""int8-static: weights and activations in int8, activation ranges calibrated on the user's samples.

onnxruntime's static quantizer does not reach into If/Loop branches in QDQ format (and fails on them in
QOperator format), and calibration cannot observe a branch's activations; so weights inside subgraphs get
dynamic int8 (ranges measured at run time) in a second pass, and the report says so.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)

from edgepack.runtime.errors import QuantizationError

from ..datasets import Samples
from . import files
from .options import QuantizeOptions
from .walk import FLOAT_TYPES, weights

QUANT_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


class _Reader(CalibrationDataReader):
    """Feeds the calibration samples one by one, each as the model takes it."""

    def __init__(self, feeds: list[dict]):
        self._feeds = feeds
        self._it = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self._feeds[start_index:end_index])


def subgraph_weight_nodes(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    """Names of targeted nodes inside subgraphs whose weights are float initializers."""
    return sorted({n.name for n, w, depth in weights(model) if depth > 0 and n.op_type in op_types
                   and w.data_type in FLOAT_TYPES and n.name not in exclude})


def quantize(model: onnx.ModelProto, opts: QuantizeOptions, samples: Samples, folder: str
             ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Quantize `model` (prepared) with calibration on `samples`; returns the model and what was done."""
    source = files.save(model, folder, "prepared.onnx")
    target = f"{folder}/static.onnx"
    try:
        with files.quiet():
            quantize_static(
                source, target, _Reader(samples.feeds),
                quant_format=QuantFormat.QDQ if opts.format == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=list(opts.op_types), per_channel=opts.per_channel,
                reduce_range=opts.reduce_range, activation_type=QUANT_TYPES[opts.activation_type],
                weight_type=QUANT_TYPES[opts.weight_type], nodes_to_exclude=list(opts.exclude_nodes),
                calibrate_method=METHODS[opts.method], calibration_providers=["CPUExecutionProvider"],
                extra_options={})
    except Exception as e:
        raise QuantizationError(f"onnxruntime's static quantizer failed: {files.first_line(e)}; try --quantize "
                                "int8-dynamic, or exclude the node it names (--exclude-nodes)") from None
    details: dict[str, Any] = {"calibration_samples": len(samples), "method": opts.method}
    inner = subgraph_weight_nodes(model, opts.op_types, opts.exclude_nodes)
    if not inner:
        return files.load(target), details
    final = f"{folder}/static_subgraphs.onnx"
    try:
        with files.quiet():
            quantize_dynamic(target, final, op_types_to_quantize=list(opts.op_types), nodes_to_quantize=inner,
                             per_channel=opts.per_channel, reduce_range=opts.reduce_range,
                             weight_type=QUANT_TYPES[opts.weight_type], extra_options={"EnableSubgraph": True})
    except Exception as e:
        if opts.allow_unquantized:
            details["subgraph_error"] = files.first_line(e)
            return files.load(target), details
        raise QuantizationError(f"onnxruntime's quantizer failed on the weights inside subgraphs: "
                                f"{files.first_line(e)}; exclude those nodes (--exclude-nodes) or pass "
                                "--allow-unquantized") from None
    details["subgraph_nodes_dynamic"] = inner
    return files.load(final), details
