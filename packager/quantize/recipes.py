"""int8-static's format, chosen by measurement on the packaging host when it can run the target's kernels.

Which int8 format is fastest differs per model and per CPU (docs/QUANTIZATION.md: on one x86 host a
YOLO-style detector ran 2.85x slower than fp32 as S8S8 QDQ and 0.56x as U8S8 QDQ, while a ResNet-50-class
classifier ran all of them at about 0.8x), so it cannot be a constant in a profile. When the host matches
the target (same architecture, and every feature the profile requires), each candidate format is quantized
from one calibration, run on the calibration samples against the fp32 model in the same process (rounds
interleaved, so that load from other processes hits them all alike), and the fastest one within the fidelity
tolerance is kept. Elsewhere (a Raspberry Pi bundle built on an x86 laptop) the profile's default is used,
documented in the profile's `sources`, and the report says that latency was not measured for that target.

The user's own --quant-format, --activation-type, --weight-type and --per-channel/--per-tensor narrow the
candidates; recipe="profile" skips the measurement (bundles then stay byte-for-byte reproducible: measured
latencies, recorded in the report, differ from run to run).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, cast
from collections.abc import Callable

import onnx

from edgepack.runtime.compat import missing_required
from edgepack.runtime.device import detect
from edgepack.runtime.errors import EdgepackError
from edgepack.runtime.profile import Profile
from edgepack.runtime.ortconfig import session_options
from edgepack.runtime.text import error_line

from .. import modelfiles
from ..fidelity.kinds import OutputKind
from ..fidelity.metrics import _time, metrics
from .options import QuantizeOptions
from .run import Prepared, QuantizeResult, prepare_once, quantize_model, quantize_prepared

# (format, activation type, weight type, per channel, wide); the profile's own default is always measured too.
# wide: the activation ops between a convolution network's layers quantized too (WIDE_OP_TYPES), so that
# tensors stay 8-bit from one convolution to the next instead of passing through float for each activation
# (a YOLO-style detector: U8S8 QDQ 0.74x fp32 with Conv alone, 0.54x wide, one process, this host). Quantizing
# every op type can destroy accuracy (docs/QUANTIZATION.md), so wide is a candidate like the others: it is
# kept only within the fidelity tolerance.
CANDIDATES: tuple[tuple[str, str, str, bool, bool], ...] = (
    ("qdq", "int8", "int8", True, False),
    ("qdq", "uint8", "int8", True, False),
    ("qoperator", "uint8", "int8", True, False),
    ("qdq", "uint8", "int8", False, False),
    ("qoperator", "uint8", "int8", False, False),
    ("qdq", "uint8", "int8", True, True),
)
# elementwise and pooling ops onnxruntime runs on 8-bit tensors (QLinear* kernels or QDQ fusions)
WIDE_OP_TYPES = ("Add", "AveragePool", "Clip", "Concat", "GlobalAveragePool", "LeakyRelu", "MaxPool", "Mul",
                 "Relu", "Resize", "Sigmoid")
CHOSEN_BY = ("format", "activation_type", "weight_type", "per_channel", "op_types")
MIN_COSINE = 0.99       # default tolerance: the worst sample's cosine (over all samples for small outputs)
MIN_AGREEMENT = 0.98    # default tolerance: top-1 agreement with the fp32 model, class outputs
SAMPLES = 16            # calibration samples each candidate runs on, for fidelity and latency
MARGIN = 0.05           # a candidate replaces the profile's format only when at least this much faster


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float = MIN_COSINE
    min_agreement: float = MIN_AGREEMENT
    source: str = "default tolerance"

    def misses(self, figures: dict[str, Any]) -> list[str]:
        out = []
        if figures.get("cosine") is None or figures["cosine"] < self.min_cosine:
            out.append(f"cosine {figures.get('cosine')} < {self.min_cosine}")
        if figures.get("agreement") is not None and figures["agreement"] < self.min_agreement:
            out.append(f"top-1 agreement {figures['agreement']:.4f} < {self.min_agreement}")
        return out


@dataclass
class Choice:
    opts: QuantizeOptions                 # the chosen recipe
    prepared: Prepared | None             # prepared and calibrated once, for quantize_model to reuse
    record: dict[str, Any] = field(default_factory=dict)   # report["quantization"]["recipe"]
    candidates: list[dict[str, Any]] = field(default_factory=list)


def name(fmt: str, activation: str, weight: str, per_channel: bool, wide: bool = False) -> str:
    letters = {"int8": "S8", "uint8": "U8"}
    return f"{letters[activation]}{letters[weight]} {'QDQ' if fmt == 'qdq' else 'QOperator'} " \
           f"{'per-channel' if per_channel else 'per-tensor'}{' +activations' if wide else ''}"


def wide_op_types(model: onnx.ModelProto, op_types: tuple[str, ...]) -> tuple[str, ...] | None:
    """`op_types` and the WIDE_OP_TYPES of a convolution network's main graph, or None where that adds
    nothing (no Conv, or none of those ops)."""
    present = {n.op_type for n in model.graph.node}
    extra = sorted((present & set(WIDE_OP_TYPES)) - set(op_types))
    return tuple(op_types) + tuple(extra) if "Conv" in present and "Conv" in op_types and extra else None


def _is_wide(opts: QuantizeOptions, default_op_types: tuple[str, ...] | None) -> bool:
    return bool(opts.op_types and default_op_types is not None and set(opts.op_types) > set(default_op_types))


def host_runs(profile: Profile) -> str | None:
    """None when this host can run `profile`'s kernels (measurements here hold for it), else why not."""
    device = detect()
    if device.architecture != profile.device.architecture:
        return f"this host is {device.architecture}, the target {profile.device.architecture}"
    if profile.device.required_features and device.features is None:
        return "this host's CPU features could not be read"
    lacking = missing_required(profile, device)
    if lacking:
        return f"this host lacks {', '.join(lacking)}, which {profile.name} requires"
    return None


def _candidates(opts: QuantizeOptions, explicit: dict[str, Any], model: onnx.ModelProto) -> list[QuantizeOptions]:
    default = (opts.format, opts.activation_type, opts.weight_type, opts.per_channel, False)
    wide = wide_op_types(model, opts.op_types or ())
    out: list[QuantizeOptions] = []
    for fmt, act, weight, per_channel, widen in (default, *CANDIDATES):
        if widen and wide is None:
            continue
        values = dict(zip(CHOSEN_BY, (fmt, act, weight, per_channel, wide if widen else opts.op_types)))
        if any(values[k] != v for k, v in explicit.items()):
            continue
        c = dataclasses.replace(opts, **cast(dict[str, Any], values))  # values: the fields' own types
        if c not in out:
            out.append(c)
    return out


def _source(profile: Profile) -> str:
    return next((s for s in profile.sources if s.startswith("quantization")), "the profile's quantization section")


def choose(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile, explicit: dict[str, Any],
           tolerance: Tolerance | None = None, kinds: dict[str, OutputKind] | None = None,
           folder: str | None = None, progress: Callable[[int, int], None] | None = None) -> Choice:
    """The int8-static recipe for `profile`: measured here when this host runs its kernels, else the
    profile's default. `explicit`: the recipe fields the user set (they narrow the candidates)."""
    tolerance = tolerance or Tolerance()
    default = name(opts.format, opts.activation_type, opts.weight_type, opts.per_channel)  # type: ignore[arg-type]
    why_not = host_runs(profile)
    candidates = _candidates(opts, explicit, model)
    if opts.mode != "int8-static" or opts.recipe == "profile" or why_not or len(candidates) < 2:
        reason = ("--recipe profile given" if opts.recipe == "profile" else why_not if why_not else
                  "the options given leave one candidate")
        record = {"chosen": default, "by": "options" if explicit and not why_not else "profile default",
                  "latency_measured": False, "why": reason, "source": _source(profile),
                  "host_runs_target": why_not is None}
        return Choice(opts, None, record)
    with modelfiles.workdir() as own:
        work = folder or own
        calibrated = tuple(dict.fromkeys(t for c in candidates for t in c.op_types or ()))  # every candidate's
        widest = dataclasses.replace(opts, per_channel=any(c.per_channel for c in candidates), format="qdq",
                                     op_types=calibrated)
        prepared = prepare_once(model, widest, work, progress)
        return _measure(model, opts, candidates, prepared, profile, tolerance, kinds, work, default)


def quantize_measured(model: onnx.ModelProto, opts: QuantizeOptions, profile: Profile, explicit: dict[str, Any],
                      tolerance: Tolerance | None = None, kinds: dict[str, OutputKind] | None = None
                      ) -> QuantizeResult:
    """quantize_model() with int8-static's recipe chosen first (choose()); the report says how, and lists every
    candidate measured."""
    with modelfiles.workdir() as folder:
        choice = choose(model, opts, profile, explicit, tolerance, kinds, folder)
        result = quantize_model(model, choice.opts, profile, prepared=choice.prepared, searched=False)
    result.report["recipe"] = choice.record
    if choice.candidates:
        result.report["candidates"] = choice.candidates
    if not choice.record.get("host_runs_target", True):
        result.warnings.append(f"latency was not measured for {profile.name}: {choice.record['why']}; its int8 "
                               f"format is {profile.name}'s default, {choice.record['chosen']} (source: "
                               f"{choice.record.get('source')})")
    return result


def _measure(model: onnx.ModelProto, opts: QuantizeOptions, candidates: list[QuantizeOptions], prepared: Prepared,
             profile: Profile, tolerance: Tolerance, kinds: dict[str, OutputKind] | None, folder: str,
             default: str) -> Choice:
    samples = prepared.calibration
    assert samples is not None  # int8-static always has calibration data (options.resolve)
    feeds = samples.feeds[:SAMPLES]
    options = session_options(profile)
    reference = modelfiles.session(model, folder, "recipe_fp32.onnx", options)
    names = [o.name for o in reference.get_outputs()]
    refs = [reference.run(names, f) for f in feeds]
    rows: list[dict[str, Any]] = []
    sessions = []
    for i, c in enumerate(candidates):
        wide = _is_wide(c, opts.op_types)
        row: dict[str, Any] = {"name": name(c.format, c.activation_type, c.weight_type,  # type: ignore[arg-type]
                                            c.per_channel, wide),  # type: ignore[arg-type]
                               "format": c.format, "activation_type": c.activation_type,
                               "weight_type": c.weight_type, "per_channel": c.per_channel,
                               "op_types": list(c.op_types or ())}
        try:
            q, _, _ = quantize_prepared(prepared, c, folder)
            s = modelfiles.session(q, folder, f"recipe_{i}.onnx", options)
            outs = [s.run(names, f) for f in feeds]
        except EdgepackError as e:
            row["error"] = " ".join(str(e).split())[:200]
        except Exception as e:  # onnxruntime refusing a format it cannot run here
            row["error"] = error_line(e)[:200]
        else:
            figures = _fidelity(names, refs, outs, samples.labels, kinds)
            row["fidelity"] = figures
            row["misses"] = tolerance.misses(figures)
            sessions.append((row, s))
        rows.append(row)
    timed = _time([reference] + [s for _, s in sessions], feeds)
    for (row, _), ms in zip(sessions, timed[1:]):
        row["p50_ms"], row["ratio"] = ms, ms / timed[0] if timed[0] else float("nan")
    ok = [r for r in rows if "p50_ms" in r and not r["misses"]]
    faithful = sorted((r for r in rows if "p50_ms" in r), key=lambda r: -(r["fidelity"].get("cosine") or -1))
    best = min(ok, key=lambda r: r["p50_ms"]) if ok else (faithful[0] if faithful else None)
    usual = next((r for r in ok if r["name"] == default), None)
    fastest = best
    if best is not None and usual is not None and best["p50_ms"] > usual["p50_ms"] * (1 - MARGIN):
        best = usual  # a difference within timing noise decides nothing: keep the profile's format
    if best is None:
        return Choice(opts, prepared, {"chosen": default, "by": "profile default", "latency_measured": False,
                                       "why": "no candidate could be quantized and run here"}, rows)
    best["chosen"] = True
    values = {k: tuple(best[k]) if k == "op_types" else best[k] for k in CHOSEN_BY}
    chosen = dataclasses.replace(opts, **cast(dict[str, Any], values))  # values: the fields' own types
    record = {"chosen": best["name"], "by": "measured" if ok else "most faithful (none within tolerance)",
              "latency_measured": True, "fp32_p50_ms": timed[0], "samples": len(feeds),
              "tolerance": dataclasses.asdict(tolerance), "profile_default": default}
    if fastest is not None and best is not fastest:   # not the fastest measured: say so, and by how much
        record.update(by="profile default kept", fastest=fastest["name"], margin=MARGIN)
    return Choice(chosen, prepared, record, rows)


def _fidelity(names: list[str], refs: list, outs: list, labels: Any, kinds: dict[str, OutputKind] | None
              ) -> dict[str, Any]:
    """The worst output's cosine (worst sample) and top-1 agreement of a candidate on the samples."""
    n = len(refs)
    labels = None if labels is None else labels[:n]
    cosines, agreements = [], []
    for j, out_name in enumerate(names):
        m = metrics([r[j] for r in refs], [o[j] for o in outs], labels, out_name, kinds)
        if "cosine_min" in m:
            cosines.append(m["cosine_min"] if m["cosine_min"] == m["cosine_min"] else -1.0)
        if "top1_agreement" in m:
            agreements.append(m["top1_agreement"])
    return {"cosine": min(cosines) if cosines else None, "agreement": min(agreements) if agreements else None}


__all__ = ["Choice", "Tolerance", "choose", "host_runs", "name", "quantize_measured"]
