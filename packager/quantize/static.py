"""int8-static: weights and activations in int8, activation ranges calibrated on the user's samples.

onnxruntime's static quantizer does not reach into If/Loop branches in QDQ format (and fails on them in
QOperator format), and calibration cannot observe a branch's activations; so weights inside subgraphs get
dynamic int8 (ranges measured at run time) in a second pass, and the report says so.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.text import error_line

from .. import modelfiles
from ..datasets import Samples
from ..graphwalk import FLOAT_TYPES, weights
from .calibrate import METHODS, Ranges, SampleReader
from .options import QuantizeOptions

QUANT_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
def subgraph_weight_nodes(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    """Names of targeted nodes inside subgraphs whose weights are float initializers."""
    return sorted({n.name for n, w, depth in weights(model) if depth > 0 and n.op_type in op_types
                   and w.data_type in FLOAT_TYPES and n.name not in exclude})


def _calibration(samples: Samples, ranges: Ranges | None) -> dict[str, Any]:
    """quantize_static's arguments for calibration: precomputed ranges when this onnxruntime takes them."""
    if ranges is not None and ranges.reused:
        return {"calibration_data_reader": None, "calibration_cache_path": ranges.path}
    return {"calibration_data_reader": SampleReader(samples.feeds)}


def quantize(model: onnx.ModelProto, opts: QuantizeOptions, samples: Samples, folder: str,
             ranges: Ranges | None = None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Quantize `model` (prepared) with calibration on `samples`, or with the `ranges` computed on them before
    (calibrate.compute_ranges); returns the model and what was done."""
    # resolve() fills every int8-static field the quantizer reads
    assert opts.op_types is not None and opts.method is not None, "quantize needs resolved options"
    assert opts.activation_type is not None and opts.weight_type is not None, "quantize needs resolved options"
    source = modelfiles.save(model, folder, "prepared.onnx")
    target = f"{folder}/static.onnx"
    try:
        with modelfiles.quiet():
            quantize_static(
                source, target, **_calibration(samples, ranges),
                quant_format=QuantFormat.QDQ if opts.format == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=list(opts.op_types), per_channel=opts.per_channel,
                reduce_range=opts.reduce_range, activation_type=QUANT_TYPES[opts.activation_type],
                weight_type=QUANT_TYPES[opts.weight_type], nodes_to_exclude=list(opts.exclude_nodes),
                calibrate_method=METHODS[opts.method], calibration_providers=["CPUExecutionProvider"],
                extra_options={})
    except Exception as e:
        raise QuantizationError(f"onnxruntime's static quantizer failed: {error_line(e)}; try --quantize "
                                "int8-dynamic, or exclude the node it names (--exclude-nodes)") from None
    details: dict[str, Any] = {"calibration_samples": len(samples), "method": opts.method}
    inner = subgraph_weight_nodes(model, opts.op_types, opts.exclude_nodes)
    if not inner:
        return modelfiles.load(target), details
    final = f"{folder}/static_subgraphs.onnx"
    try:
        with modelfiles.quiet():
            quantize_dynamic(target, final, op_types_to_quantize=list(opts.op_types), nodes_to_quantize=inner,
                             per_channel=opts.per_channel, reduce_range=opts.reduce_range,
                             weight_type=QUANT_TYPES[opts.weight_type], extra_options={"EnableSubgraph": True})
    except Exception as e:
        if opts.allow_unquantized:
            details["subgraph_error"] = error_line(e)
            return modelfiles.load(target), details
        raise QuantizationError(f"onnxruntime's quantizer failed on the weights inside subgraphs: "
                                f"{error_line(e)}; exclude those nodes (--exclude-nodes) or pass "
                                "--allow-unquantized") from None
    details["subgraph_nodes_dynamic"] = inner
    return modelfiles.load(final), details
