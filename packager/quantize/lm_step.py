"""The quantize step for a language model with a KV cache (a source with report["llm"]): int4-weight by GPTQ
(default) or round-to-nearest over every weight, embedding and LM head included, with the perplexity before
and after measured on the calibration windows. Other modes go through the generic step."""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx

from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile

from .lm_data import model_perplexity, sampled_windows, windows_from
from .llm import quantize_lm
from .options import QuantizeOptions
from .run import QuantizeResult

LM_MODES = ("int4-weight",)


def quantize_language_model(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile,
                            llm: dict[str, Any]) -> QuantizeResult:
    if opts.mode not in LM_MODES:
        raise OptionError(f"--quantize {opts.mode} is not supported for language models yet; use int4-weight")
    method = opts.int4_method or "gptq"
    if opts.calibration:
        windows = windows_from(opts.calibration, llm)
        source = "file"
    else:
        windows = sampled_windows(model, llm)
        source = "sampled from the float model"
    result, details = quantize_lm(model, method, opts.block_size or 32,
                                  4 if opts.accuracy_level is None else opts.accuracy_level, windows)
    before, after = model_perplexity(model, windows), model_perplexity(result, windows)
    warnings = []
    increase = 100.0 * (after / before - 1.0)
    if increase > 10.0:
        warnings.append(f"int4 ({method}) raised perplexity on the calibration windows by {increase:.1f}% "
                        f"({before:.2f} -> {after:.2f}); try --int4-method gptq with --calibration TEXT.txt")
    report = {"mode": opts.mode, **details, "calibration": source,
              "perplexity": {"float": round(before, 4), "quantized": round(after, 4),
                             "increase_pct": round(increase, 2), "on": "calibration windows"},
              "bytes_before": _bytes(model), "bytes_after": _bytes(result)}
    step = {"name": "quantize", "options": {**dataclasses.replace(opts).record(), "int4_method": method}}
    return QuantizeResult(result, step, report, profile, None, warnings)


def _bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)
