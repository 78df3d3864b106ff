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


def search_lines(search: dict[str, Any] | None, timing: dict[str, Any] | None = None) -> list[str]:
    if not search:
        return []
    trials = search["trials"]
    chosen = trials[search["chosen"]]
    took = f" in {timing['seconds']:.1f} s" if timing and "seconds" in timing else ""
    lines = [f"search: {len(trials)} trials{took}; chose trial {chosen['index']}: {_recipe(chosen)}"]
    held = []
    for name, limit in search["budget"].items():
        if name not in LIMITS:
            continue
        value = (timing or {}).get("measured", {}).get(chosen["index"], {}).get(FIGURE[name]) \
            if name in ("max_memory_mb", "max_latency_ms") else chosen.get(FIGURE[name])
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
    if search.get("stopped") != "done":
        lines.append(f"  stopped     {search['stopped']} (--max-trials)")
    return lines
