"""int4-weight: blockwise 4-bit weights, float activations (onnxruntime's MatMulNBitsQuantizer).

MatMul weights become MatMulNBits (accuracy_level 4 computes in int8: without it the kernel is slow on CPUs)
and embedding tables read by Gather become GatherBlockQuantized. 4-bit tensors need opset 21 and IR version
10: the model is converted properly first (onnx.version_converter) rather than having its opset number
overwritten, which is what the quantizer itself does.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnxruntime.quantization import QuantFormat
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.errors import EdgepackError
from edgepack.runtime.text import error_line

from .. import modelfiles
from ..graphwalk import FLOAT_TYPES, weights
from .options import QuantizeOptions
from .prepare import raise_opset

INT4_OPSET = 21


def quantize(model: onnx.ModelProto, opts: QuantizeOptions) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """4-bit MatMul weights, and embedding tables when a float one will really be quantized: only then is the
    opset raised to 21. When the tables' conversion or quantization fails, the MatMuls are quantized alone and
    the tables stay in float, which details["tables_left_float"] says (run.py turns it into a warning)."""
    if opts.int4_method == "gptq":
        raise QuantizationError("--int4-method gptq applies to language models packaged from a Hugging Face "
                                "folder or a KV-cache .onnx; other models use round-to-nearest")
    op_types = tuple(sorted({"MatMul" if t == "Gemm" else t for t in opts.op_types or ()}))  # Gemm: see prepare
    details: dict[str, Any] = {"block_size": opts.block_size, "accuracy_level": opts.accuracy_level}
    excluded = set(opts.exclude_nodes)
    tables = [n.name for n, w, _ in weights(model)
              if n.op_type == "Gather" and w.data_type in FLOAT_TYPES and n.name not in excluded]
    matmul_only = tuple(t for t in op_types if t != "Gather")
    if "Gather" not in op_types or not tables:
        # The quantizer raises the opset number itself (without converting the graph) whenever Gather is among
        # its op types: with no table to quantize, that would only break ops whose form changed since.
        return _run(model, opts, matmul_only), details
    try:
        converted = raise_opset(model, INT4_OPSET, "4-bit embedding tables",
                                "leave them in float (--op-types MatMul,Gemm)")
        if converted.ir_version < 10:
            converted.ir_version = 10
        result = _run(converted, opts, op_types)
    except EdgepackError as e:
        if not matmul_only:
            raise
        details["tables_left_float"] = {"tables": tables[:20], "reason": str(e)}
        return _run(model, opts, matmul_only), details
    details["opset"] = INT4_OPSET
    return result, details


def _run(model: onnx.ModelProto, opts: QuantizeOptions, op_types: tuple[str, ...]) -> onnx.ModelProto:
    if not op_types:
        return model
    own = onnx.ModelProto()
    own.CopyFrom(model)  # the quantizer rewrites the graph it is given: a search's prepared model is shared
    try:
        with modelfiles.quiet():
            quantizer = MatMulNBitsQuantizer(
                own, bits=4, block_size=opts.block_size, is_symmetric=opts.symmetric,
                accuracy_level=opts.accuracy_level, nodes_to_exclude=list(opts.exclude_nodes),
                quant_format=QuantFormat.QOperator, op_types_to_quantize=op_types,
                quant_axes=(("MatMul", 0), ("Gather", 1)))
            quantizer.process()
    except Exception as e:
        raise QuantizationError(f"onnxruntime's 4-bit quantizer failed on {'/'.join(op_types)} weights: "
                                f"{error_line(e)}") from None
    return quantizer.model.model
