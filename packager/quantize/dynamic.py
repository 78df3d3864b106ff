"""int8-dynamic: int8 weights, activations quantized at run time (no calibration data needed).

MatMul only where B is a constant (activation-by-activation products such as attention scores stay float);
subgraph branches included (EnableSubgraph works once their weights are initializers, see prepare.py).
"""

from __future__ import annotations

from typing import Any

import onnx
from onnxruntime.quantization import quantize_dynamic

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.text import error_line

from .. import modelfiles
from .options import QuantizeOptions
from .static import QUANT_TYPES


def quantize(model: onnx.ModelProto, opts: QuantizeOptions, folder: str) -> tuple[onnx.ModelProto, dict[str, Any]]:
    # resolve() fills op_types and weight_type for int8-dynamic
    assert opts.op_types is not None and opts.weight_type is not None, "quantize needs resolved options"
    source = modelfiles.save(model, folder, "prepared.onnx")
    op_types = sorted({"MatMul" if t == "Gemm" else t for t in opts.op_types})  # Gemm: rewritten by prepare
    target = f"{folder}/dynamic.onnx"
    try:
        with modelfiles.quiet():
            quantize_dynamic(source, target, op_types_to_quantize=op_types, per_channel=opts.per_channel,
                             reduce_range=opts.reduce_range, weight_type=QUANT_TYPES[opts.weight_type],
                             nodes_to_exclude=list(opts.exclude_nodes),
                             extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})
    except Exception as e:
        raise QuantizationError(f"onnxruntime's dynamic quantizer failed: {error_line(e)}; exclude the "
                                "node it names (--exclude-nodes) or narrow --op-types") from None
    return modelfiles.load(target), {}
