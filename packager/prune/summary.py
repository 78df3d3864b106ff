"""The pruning report as a few lines of text, for `edgepack package` and `edgepack inspect`."""

from __future__ import annotations

from typing import Any


def summary_lines(report: dict[str, Any] | None, layers: int | None = 0) -> list[str]:
    """The pruning report in a few lines, plus one per layer for the first `layers` (None: all) layers."""
    if not report:
        return []
    p, f = report["params"], report["flops"]
    lines = [f"pruned {report['method']}:{report['ratio']:g} ({report['scope']}, {report['criterion']}"
             f"{', reconstructed' if report.get('reconstruct') else ''}): params {p['before']:,} -> {p['after']:,} "
             f"({p['ratio']:.3f}x), FLOPs {f['before']:,} -> {f['after']:,} ({f['ratio']:.3f}x)"]
    if report.get("not_pruned"):
        lines.append(f"  not pruned: {report['not_pruned']}")
    if f.get("unsized_layers"):
        lines.append(f"  note: the spatial size (or sequence length) of {f['unsized_layers']} convolution or "
                     "recurrent layer(s) is not known, so their FLOPs count one output position (or time step) "
                     "each; give --calibration DATA or --shape NAME=D0,D1,... to count them at a real input size")
    odd = [x["name"] for x in report.get("layers", []) if x["op"] == "Conv" and x["shape"][1] != x["shape"][0]
           and x["shape"][1][0] % 8]
    if odd and report.get("round_to", 1) == 1:
        lines.append(f"  note: {len(odd)} pruned Conv layers keep a channel count that is not a multiple of 8, "
                     "which onnxruntime's x86 convolutions run slowly; --prune-round-to 8 avoids it")
    if "zeros" in report:
        z = report["zeros"]
        lines.append(f"  zero weights {z['before']:,} -> {z['after']:,} of {p['after']:,}")
    fid = report.get("fidelity")
    if fid:
        agree = f", top-1 agreement {100 * fid['top1_agreement']:.1f}%" if "top1_agreement" in fid else ""
        lines.append(f"  against the original on {fid['samples']} calibration samples: cosine mean "
                     f"{fid['cosine_mean']:.4f}, min {fid['cosine_min']:.4f}{agree}")
    no_rule = report.get("no_rule") or {}
    if no_rule:
        ops = ", ".join(f"{op} ({n:,} weights)" for op, n in sorted(no_rule.items()))
        lines.append(f"  not pruned: {ops}: no pruning rule for these op types, so their weights stay as they are")
    for item in report.get("left_alone", []):
        lines.append(f"  left alone: {item['channels']}/{item['of']} channels of {', '.join(item['layers'])}: "
                     f"{item['reason']}")
    rows = report.get("layers", [])
    for layer in rows[:layers]:
        (sb, sa), (pb, pa), (fb, fa) = layer["shape"], layer["params"], layer["flops"]
        lines.append(f"  {layer['name']:<28} {layer['op']:<8} {str(sb):<16} -> {str(sa):<16} params "
                     f"{pb:>10,} -> {pa:>10,}  FLOPs {fb:>12,} -> {fa:>12,}")
    if layers is not None and len(rows) > layers > 0:
        lines.append(f"  ... {len(rows) - layers} more layers (--all lists them)")
    return lines
