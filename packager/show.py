"""What `edgepack inspect` shows: a bundle's manifest and sizes, as JSON or as lines for people.

Decodes no tensor. Every string from the manifest is printed through `untrusted.printable`, and a free-form
field that is not what the packager writes is a MalformedRecord (one line from the CLI), not a crash.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .untrusted import printable, recorded_fields


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def summary(path: str | os.PathLike) -> dict[str, Any]:
    """What `inspect --json` prints: the manifest plus sizes; decodes nothing."""
    from edgepack.runtime import open_bundle

    path = os.fspath(path)
    with open_bundle(path) as b:
        m = b.manifest
        info = {
            "path": path, "bundle_bytes": b.file_size, "stored_bytes": m.stored_bytes, "raw_bytes": m.raw_bytes,
            "compression_ratio": (m.stored_bytes / m.raw_bytes) if m.raw_bytes else 1.0,
            "signed": bool(b.signature), "signer": b.signer, "tensor_count": len(m.tensors),
            "layout": m.layout, "mapped_bytes": sum(t.raw_length for t in m.mapped), "manifest": m.raw,
        }
    from .export import model_io

    return {**model_io(path), **info}


def summary_json(path: str | os.PathLike) -> str:
    """`inspect --json`: the summary as ASCII JSON (names with any characters come out as escapes)."""
    with recorded_fields(path):
        return json.dumps(summary(path), indent=1)


def shape_text(shape: list[Any] | None) -> str:
    return "[unknown rank]" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def io_lines(io: dict[str, list[dict[str, Any]]]) -> list[str]:
    """`inspect`'s lines for the model's inputs and outputs."""
    lines = []
    for key, label in (("inputs", "input"), ("outputs", "output")):
        for v in io.get(key, []):
            lines.append(f"  {label:<11} {v['name']}: {v['dtype']} {shape_text(v['shape'])}")
    return lines


def _layout_text(s: dict[str, Any]) -> str:
    if s["layout"] != "mapped":
        return ": every tensor coded"
    m = s["manifest"]
    count = len([t for t in m["tensors"] if t["binding"] == "mapped"])
    return (f": {count} tensors ({human(s['mapped_bytes'])}) raw at {m['layout']['alignment']}-byte aligned "
            "offsets, mapped by onnxruntime")


def _tensor_lines(tensors: list[dict[str, Any]], show_all: bool) -> list[str]:
    tensors = sorted(tensors, key=lambda t: -t["raw_length"])
    shown = tensors if show_all else tensors[:20]
    names = [printable(t["name"]) for t in shown]
    width = max([len(n) for n in names] + [4])
    lines = [f"  {'name':<{width}}  {'dtype':<8} {'shape':<18} {'codec':<14} {'raw':>10} {'stored':>10}  ratio"]
    for name, t in zip(names, shown):
        ratio = t["length"] / t["raw_length"] if t["raw_length"] else 1.0
        lines.append(f"  {name:<{width}}  {t['dtype']:<8} {str(t['shape']):<18} {t['codec']:<14} "
                     f"{human(t['raw_length']):>10} {human(t['length']):>10}  {ratio:.3f}")
    if len(shown) < len(tensors):
        lines.append(f"  ... {len(tensors) - len(shown)} smaller tensors (--all lists them)")
    return lines


def _report_lines(report: dict[str, Any], show_all: bool, bundle_bytes: int | None = None) -> list[str]:
    from .prune.summary import summary_lines
    from .quantize.describe import report_lines
    from .search.describe import search_lines

    lines = ["  " + line for line in summary_lines(report.get("prune"), None if show_all else 20)]
    lines += report_lines(report)
    lines += ["  " + line for line in search_lines(report.get("search"), bundle_bytes=bundle_bytes)]
    lines += [f"  warning     {warning}" for warning in report.get("warnings", [])]
    extra = {k: v for k, v in report.items()
             if k not in ("lossless", "prune", "quantization", "fidelity", "warnings", "search", "layers",
                           "input_shapes")}
    if extra:
        lines.append("  report      " + json.dumps(extra)[:2000])
    return lines


def inspect_lines(path: str | os.PathLike, show_all: bool = False) -> list[str]:
    """`edgepack inspect`: target, provenance, tensors and sizes, one printable line each."""
    with recorded_fields(path):
        s = summary(path)
        m = s["manifest"]
        prov = m["provenance"]
        src = prov.get("source", {})
        lines = [
            f"{os.fspath(path)}: edgepack bundle v{m['version']}, {s['bundle_bytes']:,} bytes"
            f"{(', signed by key ' + str(s['signer'])) if s['signed'] else ''}",
            f"  target      {m['target'].get('name', '?')}",
            f"  source      {src.get('name', '?')} ({src.get('kind', '?')}, {src.get('bytes', 0):,} bytes, "
            f"sha256 {str(src.get('sha256', ''))[:16]}...)",
            f"  steps       {', '.join(str(step['name']) for step in prov.get('steps', []))}",
            *io_lines(s),
            f"  layout      {s['layout']}{_layout_text(s)}",
            f"  tensors     {s['tensor_count']}: {human(s['raw_bytes'])} raw, {human(s['stored_bytes'])} "
            f"stored ({s['compression_ratio']:.3f}x)",
        ]
        lines += _tensor_lines(m["tensors"], show_all)
        lines += _report_lines(m.get("report") or {}, show_all, s["bundle_bytes"])
    return [printable(line) for line in lines]
