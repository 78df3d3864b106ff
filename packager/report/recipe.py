"""The report's section on int8-static's recipe: every candidate format measured, or why none was."""

from __future__ import annotations

from typing import Any

from ..quantize.describe import how
from .parts import Item, Section, Table


def _figure(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def recipe_section(d: dict[str, Any]) -> Section | None:
    q = d["report"].get("quantization") or {}
    r = q.get("recipe")
    if not r:
        return None
    if not r.get("latency_measured"):
        return Section("int8 format", [f"{r['chosen']}: {r['by']}. Latency was not measured: {r['why']}. Source "
                                       f"of the profile's default: {r.get('source', '-')}."])
    items: list[Item] = [
        f"Each candidate format was quantized from one calibration and run on {r['samples']} calibration samples "
        f"on the packaging host, interleaved with the fp32 model ({r['fp32_p50_ms']:.3g} ms per run) in the same "
        f"process; kept: {r['chosen']} ({how(r)}). Tolerance: worst-sample cosine >= "
        f"{r['tolerance']['min_cosine']}, top-1 agreement >= {r['tolerance']['min_agreement']} "
        f"({r['tolerance']['source']}). The profile's default is {r['profile_default']}."]
    rows = []
    for c in q.get("candidates", []):
        f = c.get("fidelity") or {}
        verdict = ("error: " + c["error"][:80]) if "error" in c else ("; ".join(c.get("misses", [])) or "yes")
        rows.append([c["name"] + (" (chosen)" if c.get("chosen") else ""), c["format"], c["activation_type"],
                     c["weight_type"], _figure(c.get("p50_ms"), ".3g"), _figure(c.get("ratio"), ".2f"),
                     _figure(f.get("cosine"), ".5f"), "-" if f.get("agreement") is None else
                     f"{100 * f['agreement']:.2f}%", ", ".join(c.get("op_types", [])) or "-", verdict])
    items.append(Table(["candidate", "format", "activations", "weights", "p50 ms", "x fp32", "worst cosine",
                        "top-1 agreement", "op types", "within tolerance"], rows, {4, 5, 6, 7}))
    return Section("int8 format, measured", items)
