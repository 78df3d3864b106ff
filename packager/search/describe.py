"""The search's report as a few lines for people (`edgepack package` and `inspect`)."""

from __future__ import annotations

from typing import Any

from .budget import DISPLAY, FIGURE, LIMITS


def _recipe(t: dict[str, Any]) -> str:
    parts = [t["mode"]]
    if t.get("prune_ratio"):
        parts.append(f"pruned {t['prune_ratio']:g}")
    nodes = t.get("float_nodes", [])
    if nodes == ["*"]:
        parts.append("everything in float")
    elif nodes:
        shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        parts.append(f"{len(nodes)} in float ({shown})")
    return ", ".join(parts)


def _figure(name: str, value: Any) -> str:
    if name == "max_bytes":
        return f"{value:,} bytes"
    unit = LIMITS[name][1]
    return f"{value:.4g}{' ' + unit if unit else ''}"


def quantized_nothing(trial: dict[str, Any]) -> bool:
    """The trial's bundle holds no quantized weight."""
    return trial["mode"] == "none" or trial.get("float_nodes") == ["*"] or \
        trial.get("quantized_weight_fraction", 1.0) == 0


def search_lines(search: dict[str, Any] | None, timing: dict[str, Any] | None = None,
                 bundle_bytes: int | None = None) -> list[str]:
    """bundle_bytes: the size of the bundle file (`inspect`), shown against --max-bytes rather than the chosen
    trial's bundle, which lacked the final report the file carries."""
    if not search:
        return []
    trials = search["trials"]
    chosen = trials[search["chosen"]]
    took = f" in {timing['seconds']:.1f} s" if timing and "seconds" in timing else ""
    lines = [f"search: {len(trials)} trials{took}; chose trial {chosen['index']}: {_recipe(chosen)}"]
    if search.get("mode", "none") != "none" and quantized_nothing(chosen):
        why = (" (every quantized recipe that held the fidelity budgets ran slower than fp32 here; "
               "--allow-slower lets the search keep one)") \
            if search.get("slower_than_fp32") else ""
        lines[0] = (f"search: QUANTIZED NOTHING: no quantized recipe met the budget{why}; the bundle is the "
                    f"{'pruned ' if chosen.get('prune_ratio') else ''}model in float "
                    f"({len(trials)} trials{took}, chose trial {chosen['index']})")
    held = []
    for name, limit in search["budget"].items():
        if name not in LIMITS:
            continue
        value = (timing or {}).get("measured", {}).get(chosen["index"], {}).get(FIGURE[name]) \
            if name in ("max_memory_mb", "max_latency_ms") else chosen.get(FIGURE[name])
        if name == "max_bytes" and bundle_bytes is not None:
            value = bundle_bytes
        elif name == "max_bytes" and timing and "bundle_bytes" in timing:
            value = timing["bundle_bytes"]   # the file written, its final report included
        shown = _figure(name, value) if value is not None else "?"
        held.append(f"{DISPLAY[FIGURE[name]]} {shown} ({LIMITS[name][0]} {_figure(name, limit)})")
    lines.append("  holds       " + "; ".join(held))
    if "quantized_weight_fraction" in chosen:
        lines.append(f"  quantized   {100 * chosen['quantized_weight_fraction']:.1f}% of the weight bytes")
    sens = search.get("sensitivity")
    if sens:
        top = [f"{r['node']} ({r['error']:.2g})" if r.get("error") is not None else f"{r['node']} (fails)"
               for r in sens["nodes"][:3]]
        lines.append(f"  sensitive   {', '.join(top)} (1 - cosine when quantized alone)")
    for note in search.get("notes", []):
        lines.append(f"  note        {note}")
    if search.get("speed_rule"):
        slow = search.get("slower_than_fp32")
        lines.append(f"  speed       {search['speed_rule']}"
                     + (f"; trials {', '.join(map(str, slow))} were slower, so not chosen" if slow else ""))
    if search.get("stopped") != "done":
        lines.append(f"  stopped     {search['stopped']} (--max-trials)")
    return lines
