"""The quantize step for a language model with a KV cache (a source with report["llm"]): int4-weight by GPTQ
(default) or round-to-nearest over every weight, embedding and LM head included, with the perplexity before
and after measured on the calibration windows. Other modes go through the generic step."""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx

from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile

from .llm import quantize_lm
from .lm_data import model_perplexity, outlier_inputs, sampled_windows, windows_from
from .options import QuantizeOptions
from .run import QuantizeResult

LM_MODES = ("int4-weight", "int8-dynamic")
# A MatMul input whose largest token reaches this many times the median token's max |x| stays float under
# int8-dynamic (one activation scale per tensor); issue 17 measured 2,900 against under 4 on a real model.
OUTLIER_RATIO = 20.0


def quantize_language_model(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile,
                            llm: dict[str, Any]) -> QuantizeResult:
    if opts.mode not in LM_MODES:
        raise OptionError(f"--quantize {opts.mode} is not supported for language models yet; use int4-weight "
                          "or int8-dynamic")
    if opts.calibration:
        windows = windows_from(opts.calibration, llm)
        source = "file"
    else:
        windows = sampled_windows(model, llm)
        source = "sampled from the float model"
    if opts.mode == "int8-dynamic":
        return _int8_dynamic(model, opts, profile, windows, source)
    method = opts.int4_method or "gptq"
    block, level = opts.block_size or 32, 4 if opts.accuracy_level is None else opts.accuracy_level
    budget = opts.max_perplexity_increase
    before = model_perplexity(model, windows)  # first: its session is gone before the quantized model exists
    result, details = quantize_lm(model, method, block, level, windows, rank=budget is not None)
    after = model_perplexity(result, windows)
    increase = 100.0 * (after / before - 1.0)
    if budget is not None and increase > budget:
        result, details, after, increase = _widen(model, method, block, level, windows, details, before, budget,
                                                  (result, after, increase))
    details.pop("hessians")
    errors = details.pop("errors")
    details["most_sensitive"] = sorted(errors, key=errors.get, reverse=True)[:5]
    warnings = []
    if budget is not None and increase > budget:
        warnings.append(f"perplexity on the calibration windows rose {increase:.1f}%, over the "
                        f"{budget:g}% budget, with every MatMul at 8 bits but the tied table")
    if increase > 10.0:
        warnings.append(f"int4 ({method}) raised perplexity on the calibration windows by {increase:.1f}% "
                        f"({before:.2f} -> {after:.2f}); try --int4-method gptq with --calibration TEXT.txt")
    tied, untied = int(details["tied_embedding_quantized"]), details["untied_embeddings_quantized"]
    report = {"mode": opts.mode, **details, "calibration": source,
              "quantized_total": details["quantized_matmuls"] + untied,
              "quantized": {"MatMulNBits": details["quantized_matmuls"] - tied,
                            "tied table (MatMulNBits + GatherBlockQuantized)": tied,
                            "embedding table (GatherBlockQuantized)": untied},
              "perplexity": {"float": round(before, 4), "quantized": round(after, 4),
                             "increase_pct": round(increase, 2), "on": "calibration windows"},
              "bytes_before": _bytes(model), "bytes_after": _bytes(result)}
    step = {"name": "quantize", "options": {**dataclasses.replace(opts).record(), "int4_method": method}}
    return QuantizeResult(result, step, report, profile, None, warnings)


def _widen(model: onnx.ModelProto, method: str, block: int, level: int, windows: list, details: dict, before: float,
           budget: float, current: tuple) -> tuple:
    """Keep the MatMuls with the largest output error at 8 bits, 1, 2, 4... of them, until the perplexity on
    the calibration windows is within `budget` % of the float model's (or all of them are 8-bit)."""
    errors = details["errors"]
    ranked = sorted(errors, key=errors.get, reverse=True)
    count = 1
    result, after, increase = current
    while increase > budget and count <= len(ranked):
        wide = frozenset(ranked[:count])
        result, details = quantize_lm(model, method, block, level, windows, wide, details["hessians"])
        details["errors"] = errors
        after = model_perplexity(result, windows)
        increase = 100.0 * (after / before - 1.0)
        if count == len(ranked):
            break
        count = min(2 * count, len(ranked))
    return result, details, after, increase


def _int8_dynamic(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile, windows: list, source: str
                  ) -> QuantizeResult:
    """int8-dynamic over the MatMuls (the tied table stays float, one copy), with the MatMuls whose inputs
    carry outlier tokens kept in float."""
    from .. import modelfiles
    from . import dynamic

    mats = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in
            {t.name for t in model.graph.initializer}]
    outliers = outlier_inputs(model, windows, [n.input[0] for n in mats], OUTLIER_RATIO)
    kept = [n.name for n in mats if n.input[0] in outliers]
    work = dataclasses.replace(opts, op_types=("MatMul",), exclude_nodes=tuple(opts.exclude_nodes) + tuple(kept))
    with modelfiles.workdir() as folder:
        result, _ = dynamic.quantize(model, work, folder)
    before, after = model_perplexity(model, windows), model_perplexity(result, windows)
    increase = 100.0 * (after / before - 1.0)
    warnings = [f"int8-dynamic raised perplexity on the calibration windows by {increase:.1f}% ({before:.2f} -> "
                f"{after:.2f}); int4-weight (GPTQ) usually keeps more"] if increase > 10.0 else []
    from .count import summarize

    counted = summarize(result, opts.mode, ("MatMul",), work.exclude_nodes)  # the summary line's node counts
    report = {"mode": opts.mode, **counted, "calibration": source, "outlier_threshold": OUTLIER_RATIO,
              "kept_float_for_outliers": {n.name: round(outliers[n.input[0]], 1) for n in mats if n.name in kept},
              "perplexity": {"float": round(before, 4), "quantized": round(after, 4),
                             "increase_pct": round(increase, 2), "on": "calibration windows"},
              "bytes_before": _bytes(model), "bytes_after": _bytes(result)}
    step = {"name": "quantize", "options": {**work.record(), "outlier_threshold": OUTLIER_RATIO}}
    return QuantizeResult(result, step, report, profile, None, warnings)


def _bytes(model: onnx.ModelProto) -> dict[str, int]:
    from .count import initializer_bytes

    return initializer_bytes(model)
