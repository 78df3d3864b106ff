"""The quantize step: prepare the graph, run the mode's quantizer, then check what it really did.

    prepare    Constants to initializers, captured weights into their branch, node names, opset, folding
    quantize   int8-static | int8-dynamic | int4-weight | fp16
    count      weight nodes by the type their weight ends up in, subgraphs included
    check      nothing quantized, or targeted weights left fp32: an error unless allow_unquantized;
               the result must load and run in onnxruntime with the target's session options (loadcheck)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import onnx

from edgepack.packager.errors import UnquantizedWeights
from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile

from .. import modelfiles
from ..datasets import Samples
from ..graphwalk import nodes, weights
from . import count, prepare
from .loadcheck import check_loads
from .method_check import check_method
from .options import GEMM_AS_MATMUL, QuantizeOptions
from .samples import load_for, random_samples

if TYPE_CHECKING:  # calibrate imports onnxruntime's quantizers: only when a quantization runs
    from .calibrate import Ranges

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider",
                 "DmlExecutionProvider", "MIGraphXExecutionProvider", "CoreMLExecutionProvider")


@dataclass
class QuantizeResult:
    model: onnx.ModelProto
    step: dict[str, Any]                 # for provenance.steps
    report: dict[str, Any]               # for report["quantization"]
    profile: Profile                     # the target profile, with a lower optimization level if one crashed
    calibration: Samples | None = None   # the samples used, for a fidelity check when no eval data is given
    warnings: list[str] = field(default_factory=list)


def _check_excluded(model: onnx.ModelProto, names: tuple[str, ...]) -> None:
    known = {n.name for n, _ in nodes(model)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise OptionError(f"exclude-nodes names {unknown}, which the model does not have (node names look like "
                          f"{sorted(known)[:3]})")


def _prepare(model: onnx.ModelProto, opts: QuantizeOptions, folder: str) -> tuple[onnx.ModelProto, dict[str, Any]]:
    done: dict[str, Any] = {}
    done["constants_to_initializers"] = prepare.constants_to_initializers(model)
    done["captured_weights_moved"] = prepare.localize_captured_weights(model)
    prepare.name_nodes(model)
    _check_excluded(model, opts.exclude_nodes)
    op_types = opts.op_types or ()
    fold = prepare.computed_weights(model, op_types) + (prepare.conv_batchnorms(model) if "Conv" in op_types else [])
    if fold:
        model = prepare.fold_constants(model, folder)
        prepare.name_nodes(model)
        done["folded_for"] = fold[:20]
    if opts.mode == "int8-static" and opts.per_channel and opts.format == "qdq":
        before = prepare.opset(model)
        model = prepare.raise_opset(model, 13, "per-channel QDQ quantization", "quantize per tensor (--per-tensor)")
        if prepare.opset(model) != before:
            done["opset"] = [before, prepare.opset(model)]
    if opts.mode in GEMM_AS_MATMUL and "Gemm" in op_types:
        done["gemm_to_matmul"] = prepare.gemm_to_matmul(model)
    return model, {k: v for k, v in done.items() if v}


@dataclass
class Prepared:
    """A model made ready for quantization once, for several quantizations that differ only in the nodes they
    quantize (a budget search's trials): the prepared graph, what preparation did, the calibration samples,
    and the activation ranges calibrated on them (int8-static; None: each quantization calibrates)."""

    model: onnx.ModelProto
    report: dict[str, Any]
    calibration: Samples | None
    ranges: Ranges | None = None


def prepare_once(model: onnx.ModelProto, opts: QuantizeOptions, folder: str,
                 progress: Callable[[int, int], None] | None = None) -> Prepared:
    """Prepare a copy of `model` for `opts` (the widest op types the caller will quantize) and, for int8-static,
    calibrate its activation ranges once; the ranges file lives in `folder`, which must outlive their use.
    progress(done, total) is called after each calibration sample."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    calibration = load_for(work, opts.calibration, "calibration data", limit=opts.calibration_samples) \
        if opts.calibration else None
    work, report = _prepare(work, opts, folder)
    ranges = None
    if opts.mode == "int8-static":
        from .calibrate import compute_ranges

        # resolve() fills method and op_types, and refuses int8-static without calibration data
        assert opts.method is not None and opts.op_types is not None and calibration is not None
        ranges = compute_ranges(work, opts.method, opts.op_types, calibration, folder, progress)
    return Prepared(work, report, calibration, ranges)


def _dispatch(model: onnx.ModelProto, opts: QuantizeOptions, calibration: Samples | None, folder: str,
              ranges: Ranges | None = None):
    if opts.mode == "int8-static":
        from . import static
        assert calibration is not None, "resolve() refuses int8-static without calibration data"
        return static.quantize(model, opts, calibration, folder, ranges)
    if opts.mode == "int8-dynamic":
        from . import dynamic
        return dynamic.quantize(model, opts, folder)
    if opts.mode == "int4-weight":
        from . import int4
        return int4.quantize(model, opts)
    from . import fp16
    return fp16.quantize(model, calibration, folder)


def _check(summary: dict[str, Any], opts: QuantizeOptions) -> list[str]:
    warnings = []
    if summary["quantized_total"] == 0:
        message = (f"{opts.mode} quantized nothing: no weight of the op types {list(opts.op_types or ['any'])} "
                   f"ended up {'fp16' if opts.mode == 'fp16' else 'in integers'} (weights by type: "
                   f"{summary['float'] or 'none found'})")
        # the advice names the cause: op types left out can be widened to; weights kept as ai.onnx.ml
        # attributes, or no weights at all, leave nothing for any --op-types to quantize
        others = sorted(set(summary["float"]) - set(opts.op_types or ()))
        if summary.get("ml_ops"):
            message += (f"; the model's ai.onnx.ml ops ({', '.join(summary['ml_ops'])}) keep their weights as "
                        "attributes, which onnxruntime's quantizers do not touch")
            advice = "package it without --quantize"
        elif not summary["float"]:
            message += "; the model has no weight tensors, so no --op-types would quantize anything"
            advice = "package it without --quantize"
        else:
            advice = f"widen --op-types (the model's float weights are on {', '.join(others or summary['float'])})"
        if not opts.allow_unquantized:
            raise UnquantizedWeights(f"{message}; {advice}, or pass --allow-unquantized to package the model "
                                     "unquantized", [])
        warnings.append(message)
    left = summary["float_targeted"]
    if left:
        shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        message = f"onnxruntime left {len(left)} weight node(s) of the targeted op types in fp32: {shown}"
        if not opts.allow_unquantized:
            raise UnquantizedWeights(message + "; exclude them on purpose (--exclude-nodes) or pass "
                                     "--allow-unquantized", left)
        warnings.append(message)
    return warnings


def quantize_prepared(prepared: Prepared, opts: QuantizeOptions, folder: str
                      ) -> tuple[onnx.ModelProto, dict[str, Any], dict[str, Any]]:
    """Quantize a prepared model as `opts` says (its exclusions named in the prepared graph), with the ranges
    calibrated once; no check. Returns the model, what the quantizer did, and the count of what it did."""
    _check_excluded(prepared.model, opts.exclude_nodes)
    targets = set(opts.op_types or ()) | ({"MatMul"} if "Gemm" in (opts.op_types or ()) else set())  # prepare's
    if opts.mode != "fp16" and not any(n.op_type in targets for n, _, _ in weights(prepared.model)):  # Gemm rewrite
        # nothing the quantizer could act on: onnxruntime's quantizers then fail in their own words (a model of
        # ai.onnx.ml ops only: "Failed to find proper ai.onnx domain") or return the model unchanged
        result, details = prepared.model, {"skipped": "no weights of the op types to quantize"}
    else:
        result, details = _dispatch(prepared.model, opts, prepared.calibration, folder, prepared.ranges)
    op_types = opts.op_types or ()
    if details.get("tables_left_float"):  # int4-weight kept the tables in float on purpose: not a failure
        op_types = tuple(t for t in op_types if t != "Gather")
    summary = count.summarize(result, opts.mode, op_types, opts.exclude_nodes)
    ml_ops = sorted({n.op_type for n, _ in nodes(result) if n.domain == "ai.onnx.ml"})
    if ml_ops:
        summary["ml_ops"] = ml_ops
    return result, details, summary


def quantize_model(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile,
                   prepared: Prepared | None = None, searched: bool | None = None) -> QuantizeResult:
    """Quantize a copy of `model` as `opts` (resolved against `profile`) says, and check the result.
    prepared: `model` prepared once before (prepare_once), for a search that quantizes it several times.
    searched: a search's trial, whose calibration method's effect the search judges (default: when prepared)."""
    with modelfiles.workdir() as folder:
        if searched is None:
            searched = prepared is not None
        if prepared is None:
            work = onnx.ModelProto()
            work.CopyFrom(model)
            calibration = load_for(work, opts.calibration, "calibration data", limit=opts.calibration_samples) \
                if opts.calibration else None
            work, report = _prepare(work, opts, folder)
            prepared = Prepared(work, report, calibration)
        result, details, summary = quantize_prepared(prepared, opts, folder)
        return checked(model, opts, profile, prepared, Quantized(result, details, summary), folder, searched)


@dataclass
class Quantized:
    """What quantize_prepared made: the model, what the quantizer did, the count of what it did."""

    model: onnx.ModelProto
    details: dict[str, Any]
    summary: dict[str, Any]


def checked(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile, prepared: Prepared, done: Quantized,
            folder: str | None = None, searched: bool = True) -> QuantizeResult:
    """Check a quantization of `model` (prepared as `prepared`) and give its result: nothing or too little
    quantized (an error unless allow_unquantized), the method's effect (not for a search's trial, whose
    figures judge it), whether it loads with the target's options; `model` is the float model it came from.
    A budget search checks the trial it chose with this, without quantizing it again."""
    if folder is None:
        with modelfiles.workdir() as work:
            return checked(model, opts, profile, prepared, done, work, searched)
    result, details, summary = done.model, done.details, done.summary
    calibration = prepared.calibration
    warnings = _check(summary, opts)
    no_effect = None if searched else check_method(prepared.model, result, opts, calibration, folder, details)
    warnings += [no_effect] if no_effect else []
    left = details.get("tables_left_float")
    if left:
        warnings.append(f"int4-weight quantized the MatMul weights only, and left {len(left['tables'])} "
                        f"embedding table(s) in float: {left['reason']}")
    probe = calibration or random_samples(model, count=1)
    feeds = probe.feeds[0] if probe else None
    profile, lowered = check_loads(result, profile, feeds, folder, reference=None if calibration else model)
    warnings += [lowered] if lowered else []
    if opts.mode == "fp16" and not any(p in GPU_PROVIDERS for p in profile.providers):
        warnings.append(f"fp16 for {profile.name}, a target without a GPU provider: CPUs compute most ops in fp32, "
                        "so fp16 halves the size but usually runs slower than fp32")
    report = {
        "mode": opts.mode, "prepared": prepared.report, **details, **summary,
        "bytes_before": count.initializer_bytes(model), "bytes_after": count.initializer_bytes(result),
    }
    record = opts.record()
    if details.get("method_asked"):  # the method asked for had no effect: record what the bundle really is
        record.update(method=details["method"], method_asked=details["method_asked"])
    return QuantizeResult(result, {"name": "quantize", "options": record}, report, profile, calibration, warnings)
