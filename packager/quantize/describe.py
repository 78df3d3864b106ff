"""The quantization, fidelity and speed reports as lines for people (`edgepack package` and `inspect`)."""

from __future__ import annotations

from typing import Any

_PREPARED = {
    "constants_to_initializers": "{} Constant weights made initializers",
    "captured_weights_moved": "{} outer weights moved into their branch",
    "folded_for": "constants folded for {}",
    "opset": "opset {0[0]} -> {0[1]}",
    "gemm_to_matmul": "{} Gemm rewritten as MatMul",
}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def quantization_lines(q: dict[str, Any]) -> list[str]:
    mode = q.get("mode", "?")
    left = q.get("float_targeted", [])
    head = (f"{mode}: {q.get('quantized_total', 0)} weight nodes ({_counts(q.get('quantized', {}))}), "
            + (f"{len(left)} targeted left fp32" if left else "none of the targeted left fp32"))
    lines = [f"  quantized   {head}"]
    if q.get("float"):
        lines.append(f"              fp32 weights kept: {_counts(q['float'])}")
    detail = []
    if "calibration_samples" in q:
        detail.append(f"{q['calibration_samples']} calibration samples, {q.get('method')}")
    if "subgraph_nodes_dynamic" in q:
        detail.append(f"{len(q['subgraph_nodes_dynamic'])} nodes inside subgraphs as dynamic int8")
    if "block_size" in q:
        detail.append(f"blocks of {q['block_size']}, accuracy level {q.get('accuracy_level')}")
    fp32 = {k: v for k, v in q.get("fp32_nodes", {}).items() if v}
    if "fp32_nodes" in q:
        detail.append("kept fp32: " + (", ".join(f"{len(v)} ({k.replace('_', ' ')})" for k, v in fp32.items())
                                       or "nothing"))
        if not q.get("activations_checked"):
            detail.append("activations not checked for overflow (give --calibration samples)")
    if "bits_per_weight" in q:  # language models (lm_step.py)
        detail.append(f"{q.get('method')}, {q['bits_per_weight']} bits per weight")
    if "perplexity" in q:
        p = q["perplexity"]
        detail.append(f"perplexity {p['float']:.3f} -> {p['quantized']:.3f} ({p['increase_pct']:+.1f}%) on {p['on']}")
    detail += [fmt.format(q["prepared"][k]) for k, fmt in _PREPARED.items() if k in q.get("prepared", {})]
    if detail:
        lines.append("              " + "; ".join(detail))
    before, after = sum(q.get("bytes_before", {}).values()), sum(q.get("bytes_after", {}).values())
    if before:
        lines.append(f"              weights {before:,} -> {after:,} bytes ({after / before:.3f}x) before coding")
    return lines


def how(r: dict[str, Any]) -> str:
    """How a measured format was chosen, in words that hold for the figures listed."""
    if r["by"] == "profile default kept":
        return (f"profile default kept: the fastest measured, {r['fastest']}, was within "
                f"{100 * r.get('margin', 0.05):.0f}% of it, inside timing noise")
    if r["by"] == "measured":
        return "measured: the fastest within tolerance"
    return r["by"]


def recipe_lines(q: dict[str, Any]) -> list[str]:
    """The int8 format and how it was chosen: a table of the candidates measured, or why none was."""
    r = q.get("recipe")
    if not r:
        return []
    if not r.get("latency_measured"):
        if r.get("host_runs_target", True):
            return [f"  format      {r['chosen']} ({r['by']}); latency not measured: {r['why']}"]
        return [f"  format      {r['chosen']} ({r['by']}); latency NOT measured for this target: {r['why']}"]
    lines = [f"  format      {r['chosen']} ({how(r)}; {len(q.get('candidates', []))} measured on this host, "
             f"fp32 {r['fp32_p50_ms']:.3g} ms per run)"]
    width = max((len(c["name"]) for c in q.get("candidates", [])), default=26)
    for c in q.get("candidates", []):
        f = c.get("fidelity") or {}
        if "error" in c:
            lines.append(f"              {c['name']:<{width}} failed: {c['error'][:100]}")
            continue
        agree = "" if f.get("agreement") is None else f", top-1 agreement {100 * f['agreement']:.2f}%"
        cos = "-" if f.get("cosine") is None else f"{f['cosine']:.4f}"
        miss = f"; outside tolerance: {'; '.join(c['misses'])}" if c.get("misses") else ""
        lines.append(f"              {c['name']:<{width}} p50 {c['p50_ms']:.3g} ms ({c['ratio']:.2f}x fp32), "
                     f"worst cosine {cos}{agree}{miss}{'  <- chosen' if c.get('chosen') else ''}")
    return lines


def _output_line(name: str, m: dict[str, Any]) -> str:
    if "kind" in m and m["kind"]["kind"] == "ignore":
        return f"{name}: ignored (--output-kind)"
    parts = []
    if "top1_agreement" in m:
        parts.append(f"top-1 agreement {100 * m['top1_agreement']:.2f}%")
    if "accuracy" in m:
        drop = 100 * (m["reference_accuracy"] - m["accuracy"])
        parts.append(f"accuracy {100 * m['accuracy']:.2f}% (original {100 * m['reference_accuracy']:.2f}%, "
                     f"{'-' if drop > 0 else '+'}{abs(drop):.2f} pt)")
    if "cosine_mean" in m:
        mean, worst = m["cosine_mean"], m["cosine_min"]
        if mean is None:
            parts.append("cosine non-finite")
        elif "cosine_over" in m:
            parts.append(f"cosine {worst:.4f} over all samples together (fewer than 8 values per sample)")
        else:
            parts.append(f"cosine worst sample {worst:.4f}, mean {mean:.4f}")
    if m.get("max_abs_error") is not None:
        rel = f", max rel error {m['max_rel_error']:.3g}" if m.get("max_rel_error") is not None else ""
        parts.append(f"max abs error {m['max_abs_error']:.3g} (outputs up to {m['reference_max_abs']:.3g}){rel}")
    if m.get("nonfinite"):
        parts.append(f"{m['nonfinite']} NON-FINITE values")
    if "exact_match" in m:
        parts.append(f"identical {100 * m['exact_match']:.2f}%")
    return f"{name}: " + ", ".join(parts)


def fidelity_lines(f: dict[str, Any]) -> list[str]:
    if "skipped" in f:
        return [f"  fidelity    not measured: {f['skipped']}"]
    if f.get("labels") is False and f.get("data") == "random inputs":
        lines = [f"  fidelity    on {f['samples']} random inputs (give --eval DATA for a real measure)"]
    else:
        where = "held-out samples" if f.get("held_out") else "calibration samples (not held out)"
        lines = [f"  fidelity    on {f['samples']} {where} from {f['data']}"]
    lines += [f"              {_output_line(name, m)}" for name, m in f.get("outputs", {}).items()]
    return lines


def speed_lines(s: dict[str, Any]) -> list[str]:
    """The speed against the original, and how far the timing noise lets it be trusted: faster (or slower)
    only when every round of runs says so."""
    rounds = s.get("rounds") or []
    noise = ""
    if len(rounds) > 1:
        lo, hi = min(rounds), max(rounds)
        spread = f"{lo:.2f}-{hi:.2f}x over {len(rounds)} rounds"
        noise = (f"; faster in every round, {spread}" if hi < 1 else f"; slower in every round, {spread}"
                 if lo > 1 else f"; {spread}: no difference beyond timing noise")
    return [f"  speed       {s['packaged_ms']:.3g} ms per run, original {s['reference_ms']:.3g} ms "
            f"({s['ratio']:.2f}x{noise}) on this machine, median of {s['runs']} runs"]


def report_lines(report: dict[str, Any]) -> list[str]:
    """What package and inspect print about quantization, fidelity and speed (warnings apart)."""
    lines = []
    if "quantization" in report:
        lines += quantization_lines(report["quantization"]) + recipe_lines(report["quantization"])
    if "fidelity" in report:
        lines += fidelity_lines(report["fidelity"])
    if report.get("speed"):
        lines += speed_lines(report["speed"])
    return lines
