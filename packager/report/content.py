"""The report's content, independent of its format: sections of paragraphs, tables and the plot, built from
collect()'s data. html.py and markdown.py render the same content."""

from __future__ import annotations

import json
from typing import Any

from ..quantize.describe import fidelity_lines
from ..search.budget import FIGURE, LIMITS, MEASURED
from . import plot
from .parts import Bar, Cell, Item, Section, Table
from .recipe import recipe_section

__all__ = ["Bar", "Cell", "Item", "Section", "Table", "sections"]


def _kb(n: int | float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _options(options: dict[str, Any]) -> str:
    parts = []
    for k, v in options.items():
        if isinstance(v, dict):
            v = json.dumps(v, separators=(",", ":"))[:120]
        elif isinstance(v, list):
            v = ", ".join(map(str, v[:6])) + (f" (+{len(v) - 6})" if len(v) > 6 else "")
        parts.append(f"{k}={v}")
    return "; ".join(parts) or "-"


def overview(d: dict[str, Any]) -> Section:
    b, src = d["bundle"], d["source"]
    ratio = b["bytes"] / src["bytes"] if src.get("bytes") else None
    against = f", {ratio:.3f}x the {src['bytes']:,}-byte source {src.get('name', '')}" if ratio else ""
    about = f" ({d['target_description'].rstrip('.')})" if d["target_description"] else ""
    items: list[Item] = [
        f"{b['name']}: {b['bytes']:,} bytes{against}, for {d['target']}{about}.",
        f"{b['tensors']} tensors, {b['raw_bytes']:,} bytes before lossless coding, {b['stored_bytes']:,} stored "
        f"({b['stored_bytes'] / max(b['raw_bytes'], 1):.3f}x). Packaged by edgepack {d.get('edgepack_version')}.",
    ]
    return Section("Overview", items)


def steps(d: dict[str, Any]) -> Section:
    rows = [[str(i + 1), s["name"], _options(s.get("options", {}))] for i, s in enumerate(d["steps"])]
    return Section("What was done", ["Each step edgepack applied, in order, with its options (the bundle's "
                                     "provenance).", Table(["#", "step", "options"], rows, {0})])


def _speed_clause(s: dict[str, Any]) -> str:
    slower = s.get("slower_than_fp32")
    if not slower:
        return ""
    return (f" and runs no slower than fp32 on this host (trial{'s' if len(slower) > 1 else ''} "
            f"{', '.join(str(t) for t in slower)} met the fidelity budgets but ran slower)")


def search(d: dict[str, Any]) -> Section | None:
    s = d["report"].get("search")
    if not s:
        return None
    chosen = s["trials"][s["chosen"]]
    n = len(s["trials"])
    items: list[Item] = [f"The budget search tried {n} recipe{'s' if n > 1 else ''} ({s['stopped']}) on "
                         f"{s['eval']['samples']} held-out samples of {s['eval']['data']}, starting from the most "
                         f"aggressive {s['mode']} recipe, and kept trial {chosen['index']}, the smallest bundle that "
                         f"meets every budget{_speed_clause(s)}."]
    if "calibration" in s:
        c = s["calibration"]
        items.append(f"Calibration: {c['samples']} samples, {c['method']}, computed {c['models_calibrated']} time(s) "
                     f"(once per model){'' if c['ranges_reused'] else ', recalibrated per trial by this onnxruntime'}.")
    rows: list[list[Cell]] = []
    for name, limit in s["budget"].items():
        if name in LIMITS:
            # the file, whose final report the chosen trial's bundle lacked
            value = d["bundle"]["bytes"] if name == "max_bytes" else chosen.get(FIGURE[name])
            shown = "measured at packaging (see below)" if value is None and name in MEASURED else \
                "-" if value is None else f"{value:,}" if name == "max_bytes" else f"{value:.4g}"
            rows.append([f"{LIMITS[name][0]} ({LIMITS[name][1] or 'fraction'})", f"{limit:,}" if name == "max_bytes"
                         else f"{limit:g}", shown])
    items.append(Table(["budget", "limit", "chosen recipe"], rows, {1, 2}))
    fig = plot.figure(s, d["source"].get("bytes", 0))
    if fig is not None:
        items.append(fig)
    items.append(trials_table(s))
    return Section("Budget search", items)


def trials_table(s: dict[str, Any]) -> Table:
    rows = []
    for t in s["trials"]:
        floats = t.get("float_nodes", [])
        kept = f"{len(floats)}" + (f": {', '.join(floats[:3])}{'...' if len(floats) > 3 else ''}" if floats else "")
        rows.append([str(t["index"]) + (" (chosen)" if t["index"] == s["chosen"] else ""), t["stage"],
                     f"{t['prune_ratio']:g}" if t.get("prune_ratio") else "-", t["mode"],
                     kept,
                     _kb(t.get("bytes")), _pct(t.get("quantized_weight_fraction"), 1),
                     "-" if t.get("accuracy_drop") is None else f"{t['accuracy_drop']:.2f}",
                     _pct(t.get("agreement")), "-" if t.get("cosine") is None else f"{t['cosine']:.5f}",
                     "yes" if t.get("meets") else ("error: " + t["error"][:80] if t.get("error") else "no")])
    return Table(["trial", "stage", "pruned", "mode", "kept in float", "bytes", "weights quantized",
                  "accuracy drop (pt)", "top-1 agreement", "cosine", "meets"], rows, {2, 5, 6, 7, 8, 9})


def fidelity(d: dict[str, Any]) -> Section | None:
    f = d["report"].get("fidelity")
    if not f:
        return None
    lines = [line.strip() for line in fidelity_lines(f)]
    lines[0] = lines[0].removeprefix("fidelity").strip().capitalize()
    return Section("Fidelity", ["The packaged model against the original, output by output. " + lines[0], *lines[1:]])


def sensitivity(d: dict[str, Any]) -> Section | None:
    sens = (d["report"].get("search") or {}).get("sensitivity")
    if not sens:
        return None
    top = max([r["error"] for r in sens["nodes"] if r.get("error") is not None] or [0.0]) or 1.0
    rows = []
    for r in sens["nodes"]:
        err = r.get("error")
        cell: Cell = Bar(1.0, "quantization failed") if "failed" in r else Bar(err / top, f"{err:.3g}")
        rows.append([r["node"], r["op"], _kb(r["weight_bytes"]), cell, _pct(r.get("agreement")),
                     "-" if r.get("accuracy_drop") is None else f"{r['accuracy_drop']:.2f}"])
    how = (f"Each node quantized alone (every other one in float), measured on {sens['samples']} eval samples: the "
           "error is 1 - the mean cosine similarity of the outputs with the original's.") \
        if sens.get("method", "exact") == "exact" else (
        f"Each node's own output with its weights rounded to int8 (and, for int8-static, its inputs and output "
        f"through the calibrated ranges), against the float node's, on {sens['samples']} eval samples, all nodes "
        "in one pass: the error is the worst channel's relative error of its output or of one quantized input. "
        "A cheap signal to rank by, not the effect on the model's outputs.")
    return Section("Per-layer sensitivity", [how + " Most sensitive first.",
        Table(["node", "op", "fp32 weight bytes", "error", "top-1 agreement", "accuracy drop (pt)"], rows,
              {2, 4, 5})])


def layer_sizes(d: dict[str, Any]) -> Section | None:
    rows = []
    for layer in d["layers"]:
        after, stored = layer.get("bytes"), layer.get("stored_bytes")
        rows.append([layer["node"], layer["op"], _kb(layer["source_bytes"]),
                     layer.get("dtype", "removed"), _kb(after), _kb(stored),
                     "-" if stored is None or not layer["source_bytes"] else f"{stored / layer['source_bytes']:.3f}"])
    if not rows:
        return None
    src = sum(x["source_bytes"] for x in d["layers"])
    stored_total = sum(x.get("stored_bytes", 0) for x in d["layers"])
    rows.append(["total", "", _kb(src), "", _kb(sum(x.get("bytes", 0) for x in d["layers"])), _kb(stored_total),
                 f"{stored_total / src:.3f}" if src else "-"])
    return Section("Size per layer", [
        "Bytes of the constant tensors each layer reads: in the source model, in the packaged one (integer "
        "weights with their scales and zero points), and as stored in the bundle after lossless coding. "
        "'removed': the layer was folded into another or pruned away.",
        Table(["layer", "op", "source bytes", "packaged type", "packaged bytes", "stored bytes", "stored / source"],
              rows, {2, 4, 5, 6})])


def measured(d: dict[str, Any]) -> Section:
    m = d["measured"]
    if "skipped" in m:
        return Section("Memory and latency", [m["skipped"]])
    rows: list[list[Cell]] = [["time to first inference", f"{1000 * m['first_inference_s']:.1f} ms"],
            ["decode + session", f"{1000 * m['session_s']:.1f} ms"],
            ["load CPU time", f"{1000 * m['load_cpu_s']:.1f} ms"],
            ["peak RSS during load", f"{m['peak_load_mb']:.1f} MB"], ["peak RSS", f"{m['peak_mb']:.1f} MB"],
            ["steady RSS after the runs", f"{m['steady_rss_mb']:.1f} MB"], ["latency p50", f"{m['p50_ms']:.3f} ms"],
            ["latency p90", f"{m['p90_ms']:.3f} ms"], ["latency p99", f"{m['p99_ms']:.3f} ms"],
            ["throughput", f"{m['throughput_per_s']:.1f} runs/s"]]
    b = m["budget"]
    budget = ("The target sets no memory budget." if b["budget_mb"] is None else
              f"Memory budget of {b['target']}: {b['budget_mb']} MB. The peak measured on this machine "
              f"({m['machine']}) {'fits within it' if b['fits'] else 'DOES NOT FIT within it'}; on the device "
              "itself, `edgepack measure` gives its own peak.")
    return Section("Memory and latency", [
        f"Measured now on this machine ({m['machine']}, {', '.join(m['providers'][:1])}), in a fresh process that "
        f"opens the bundle and runs it {m['runs']} times after the first, on {m['inputs']} inputs. Peak RSS "
        "includes Python and onnxruntime, as a deployed process has them.",
        Table(["figure", "value"], rows, {1}), budget, *[f"warning: {w}" for w in m.get("warnings", [])]])


def warnings(d: dict[str, Any]) -> Section | None:
    ws = d["report"].get("warnings", [])
    return Section("Warnings", list(ws)) if ws else None


def sections(d: dict[str, Any]) -> list[Section]:
    built = [overview(d), steps(d), recipe_section(d), search(d), fidelity(d), sensitivity(d), layer_sizes(d),
             measured(d), warnings(d)]
    return [s for s in built if s is not None]
