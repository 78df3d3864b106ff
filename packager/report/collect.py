"""Everything `edgepack report` shows about a bundle, as one JSON-able dict: read from the manifest (what was
done, the fidelity, the search, the layers), plus memory and latency measured now, on this machine, in a
fresh child process (edgepack.runtime.measure)."""

from __future__ import annotations

import os
import platform
from typing import Any

from edgepack.runtime import open_bundle
from edgepack.runtime.errors import EdgepackError
from edgepack.runtime.text import clip
from edgepack.version import __version__


def _stored(manifest: Any) -> dict[str, tuple[int, int]]:
    """tensor name -> (raw bytes, stored bytes), the first entry of each name."""
    out: dict[str, tuple[int, int]] = {}
    for t in manifest.tensors:
        out.setdefault(t.name, (t.raw_length, t.length))
    return out


def layers(report: dict[str, Any], manifest: Any) -> list[dict[str, Any]]:
    """The package-time layer records, with each layer's stored (coded) bytes from the manifest."""
    sizes = _stored(manifest)
    rows = []
    for layer in report.get("layers", []):
        row = {k: v for k, v in layer.items() if k != "tensors"}
        if "tensors" in layer:
            row["stored_bytes"] = sum(sizes[n][1] for n in layer["tensors"] if n in sizes)
        rows.append(row)
    return rows


def measure_now(bundle: str, runs: int, inputs: str | None, shapes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Peak memory and latency of the bundle on this machine, or why they were not measured."""
    from edgepack.runtime.measure import measure

    from ..progress import phase

    try:
        with phase(f"measuring memory and latency ({runs} runs)"):
            m = measure(bundle, runs=runs, inputs=inputs, force=True, shapes=shapes)
    except EdgepackError as e:
        return {"skipped": f"measuring failed: {clip(e, 300)}"}
    b = m["bundle"]
    keys = ("first_inference_s", "session_s", "first_run_s", "load_cpu_s", "peak_load_mb", "peak_mb",
            "steady_rss_mb", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "runs", "providers", "warnings")
    return {**{k: b[k] for k in keys}, "inputs": os.path.basename(inputs) if inputs else "random (seeded)",
            "budget": m["budget"], "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                               f"Python {platform.python_version()}"}


def collect(bundle: str | os.PathLike, measure: bool = True, runs: int = 50,
            inputs: str | os.PathLike | None = None, shapes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's data. measure: run the bundle in a child process for memory and latency."""
    path = os.fspath(bundle)
    if not os.path.isfile(path):
        raise EdgepackError(f"{path}: no such bundle")
    if inputs is not None and not os.path.isfile(inputs):
        raise EdgepackError(f"{os.fspath(inputs)}: no such file of inputs")
    with open_bundle(path) as b:
        m = b.manifest
        report = m.raw.get("report") or {}
        data: dict[str, Any] = {
            "bundle": {"name": os.path.basename(path), "bytes": b.file_size, "raw_bytes": m.raw_bytes,
                       "stored_bytes": m.stored_bytes, "tensors": len(m.tensors), "signed": bool(b.signature)},
            "target": m.target.get("name", "?"),
            "target_description": m.target.get("description", ""),
            "source": m.raw["provenance"].get("source", {}),
            "steps": m.raw["provenance"].get("steps", []),
            "edgepack_version": m.raw["provenance"].get("edgepack_version"),
            "report": {k: v for k, v in report.items() if k != "layers"},
            "layers": layers(report, m),
        }
    data["measured"] = measure_now(path, runs, os.fspath(inputs) if inputs else None, shapes) if measure else \
        {"skipped": "not measured (--no-measure)"}
    data["generated_by"] = f"edgepack {__version__}"
    return data
