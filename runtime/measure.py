"""measure(): what a bundle costs on this device, side by side with plain onnxruntime on the .onnx file.

    from edgepack.runtime.measure import measure
    report = measure("model.edgepack", baseline="model.onnx", runs=100)
    report["bundle"]["first_inference_s"], report["ratios"]["peak_mb"], report["budget"]["fits"]

Each side is measured in fresh child processes (runtime/measure_child.py); with repeat > 1 the two alternate and
each figure is the median over the repeats (latency percentiles pool all the runs). `edgepack measure` prints
this report.
"""

from __future__ import annotations

import os
import statistics
from typing import Any
from collections.abc import Callable

from .device import detect
from .errors import InputError
from .feeds import bundle_shapes, check_npz
from .measure_child import measure_child
from .profile import profile_from_dict, resolve
from .reader import open_bundle
from .signature import public_key_bytes

# per-process figures summarized as medians over repeats (seconds, MB)
FIGURES = ("import_s", "open_s", "session_s", "first_run_s", "first_inference_s", "load_cpu_s", "peak_load_mb",
           "peak_mb", "steady_rss_mb")
# figures compared bundle / baseline
RATIOS = ("bytes", "first_inference_s", "session_s", "first_run_s", "load_cpu_s", "peak_load_mb", "peak_mb",
          "steady_rss_mb", "p50_ms", "p90_ms", "p99_ms", "throughput_per_s")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summarize(children: list[dict[str, Any]], path: str, size: int) -> dict[str, Any]:
    """One side's figures: medians over its child processes, latencies pooled."""
    lat = [x for c in children for x in c["latencies_s"]]
    out: dict[str, Any] = {"path": path, "bytes": size}
    for key in FIGURES:
        out[key] = statistics.median(c[key] for c in children)
    ms = [x * 1000 for x in lat]
    out.update({"p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
                "mean_ms": statistics.fmean(ms) if ms else float("nan"), "min_ms": min(ms, default=float("nan")),
                "max_ms": max(ms, default=float("nan")),
                "throughput_per_s": len(lat) / sum(lat) if lat and sum(lat) > 0 else float("nan"),
                "runs": len(children[0]["latencies_s"]), "processes": len(children),
                "providers": children[0]["providers"], "lean": children[0]["lean"],
                "warnings": children[0]["warnings"]})
    return out


def onnx_bytes(path: str) -> int:
    """The .onnx file's size plus its external data files', as plain onnxruntime reads them."""
    import mmap

    size = os.path.getsize(path)
    try:
        from .protowire import scan_model

        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            records = scan_model(memoryview(m), [], any_external=True)  # mapped: only headers are read, not weights
    except Exception:  # not parseable here: onnxruntime will say so; count the file alone
        return size
    folder = os.path.dirname(os.path.abspath(path))
    files = {(r.external or {}).get("location") for r in records if r.external}
    return size + sum(os.path.getsize(os.path.join(folder, f)) for f in files
                      if f and os.path.isfile(os.path.join(folder, f)))


def budget(bundle: str, target: str | None, peak_mb: float) -> dict[str, Any]:
    """Whether the measured peak fits the profile's memory budget, and the memory this device has free."""
    if target is not None:
        profile = resolve(target)
    else:
        with open_bundle(bundle) as b:
            profile = profile_from_dict(b.manifest.target, f"{bundle} (recorded target)", strict=False)
    limit = profile.memory.budget_mb
    device = detect()
    return {"target": profile.name, "budget_mb": limit, "peak_mb": peak_mb,
            "fits": None if limit is None else peak_mb <= limit,
            "share": None if not limit else peak_mb / limit,
            "device_available_mb": device.available_mb,
            "fits_device": None if device.available_mb is None else peak_mb <= device.available_mb}


def measure(bundle: str | os.PathLike, baseline: str | os.PathLike | None = None, *, runs: int = 100,
            inputs: str | os.PathLike | None = None, repeat: int = 1, target: str | None = None,
            force: bool = False, lean: bool | None = None, timeout: float = 3600,
            progress: Callable[[str, dict[str, Any]], None] | None = None,
            progress_s: float = 2.0, shapes: dict[str, tuple[int, ...]] | None = None,
            public_key: str | os.PathLike | bytes | None = None) -> dict[str, Any]:
    """Measure `bundle` (and `baseline`, a .onnx file, alternately) in fresh processes: `runs` runs after the
    first, `repeat` processes per side. inputs: an .npz of feeds (default: seeded random feeds). target,
    force, lean, public_key: as for load() (a signed bundle checked with its key loads with the trusted
    limits, as it would be deployed). progress(side, report) is called as the children report progress (every
    `progress_s` seconds of runs at most, so short measurements report nothing). shapes: input name -> shape
    of the random feeds (default: the shapes the bundle recorded from its calibration or evaluation data, else
    each dynamic dimension 1)."""
    bundle = os.fspath(bundle)
    if runs < 0 or repeat < 1:
        raise InputError(f"runs must be >= 0 and repeat >= 1, got runs={runs}, repeat={repeat}")
    for path in (bundle, baseline, inputs):
        if path is not None and not os.path.isfile(path):
            raise InputError(f"{os.fspath(path)}: no such file")
    if inputs is not None:  # the children numpy.load it: a bomb or a hostile header is refused here first
        check_npz(os.fspath(inputs), "inputs")
    key = public_key_bytes(public_key) if public_key is not None else None  # a bad key fails here, once
    shapes = dict(shapes or {})
    recorded = bundle_shapes(bundle, shapes) if inputs is None else {}
    ours, theirs = [], []
    folder = _private_outputs()
    try:
        for i in range(repeat):
            ours.append(measure_child("bundle", bundle, inputs, runs, timeout, target=target, force=force,
                                      lean=lean, outputs=os.path.join(folder, "bundle.npz") if i == 0 else None,
                                      progress=_tagged(progress, "bundle", i, repeat), progress_s=progress_s,
                                      shapes=shapes, recorded=recorded, public_key=key))
            if baseline is not None:
                theirs.append(measure_child("onnx", baseline, inputs, runs, timeout,
                                            outputs=os.path.join(folder, "baseline.npz") if i == 0 else None,
                                            progress=_tagged(progress, "baseline", i, repeat),
                                            progress_s=progress_s, shapes=shapes, recorded=recorded))
        report: dict[str, Any] = {"runs": runs, "repeat": repeat, "inputs": os.fspath(inputs) if inputs else None,
                                  "bundle": summarize(ours, bundle, os.path.getsize(bundle))}
        report["baseline"] = (summarize(theirs, os.fspath(baseline), onnx_bytes(os.fspath(baseline)))
                              if baseline is not None else None)
        if baseline is not None:
            a, b = report["bundle"], report["baseline"]
            report["ratios"] = {k: (a[k] / b[k] if b[k] else None) for k in RATIOS}
            (report["outputs_identical"], report["outputs_max_abs_diff"],
             report["outputs_mismatch"]) = _compare_outputs(folder)
        report["budget"] = budget(bundle, target, report["bundle"]["peak_mb"])
        return report
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _tagged(progress: Callable[[str, dict[str, Any]], None] | None, side: str, i: int, repeat: int) -> Any:
    if progress is None:
        return None
    return lambda report: progress(side, {**report, "process": i + 1, "processes": repeat})


def _private_outputs() -> str:
    from .feeder import private_dir

    return private_dir()


def _named(z: Any) -> list[tuple[str, Any]]:
    """The outputs a child saved (measure_child: arr_0, arr_1, ... and their names), in order."""
    names = [str(n) for n in z["names"]] if "names" in z.files else [k for k in z.files]
    return [(n, z[f"arr_{i}"] if "names" in z.files else z[n]) for i, n in enumerate(names)]


def _compare_outputs(folder: str) -> tuple[bool, float | None, str | None]:
    """Whether the first run's outputs are bit-identical, the largest absolute difference, and, when the outputs
    differ in number, shapes or types (the difference then None), how."""
    import numpy as np

    with np.load(os.path.join(folder, "bundle.npz")) as za, np.load(os.path.join(folder, "baseline.npz")) as zb:
        a, b = _named(za), _named(zb)
    if len(a) != len(b) or any(x.shape != y.shape or x.dtype != y.dtype for (_, x), (_, y) in zip(a, b)):
        shown = lambda side: ", ".join(f"{n} {x.dtype}{list(x.shape)}" for n, x in side)
        return False, None, f"the bundle's outputs are {shown(a)}, the baseline's {shown(b)}"
    same = all(np.array_equal(x, y, equal_nan=True) for (_, x), (_, y) in zip(a, b))
    diffs = [float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
             for (_, x), (_, y) in zip(a, b) if x.dtype.kind in "fiub"]
    return same, max(diffs, default=0.0), None


def _size(n: float) -> str:
    """Bytes for people: a 36 KB bundle is '35.4 KB', not '0.0 MB'."""
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n:.0f} B"


def _ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def _mb(x: float) -> str:
    return f"{x:.1f} MB"


_ROWS = (  # label, key, format
    ("bytes", "bytes", _size),
    ("time to first inference", "first_inference_s", _ms),
    ("  open", "open_s", _ms),
    ("  decode + session", "session_s", _ms),
    ("  first run", "first_run_s", _ms),
    ("load CPU time", "load_cpu_s", _ms),
    ("peak RSS during load", "peak_load_mb", _mb),
    ("steady RSS after the runs", "steady_rss_mb", _mb),
    ("peak RSS", "peak_mb", _mb),
    ("latency p50", "p50_ms", lambda v: f"{v:.2f} ms"),
    ("latency p90", "p90_ms", lambda v: f"{v:.2f} ms"),
    ("latency p99", "p99_ms", lambda v: f"{v:.2f} ms"),
    ("throughput", "throughput_per_s", lambda v: f"{v:.1f}/s"),
)


def lines(report: dict[str, Any]) -> list[str]:
    """The report as a table for people."""
    a, b = report["bundle"], report["baseline"]
    head = (f"{os.path.basename(a['path'])}: {report['runs']} runs after the first, "
            f"{report['repeat']} fresh process{'es' if report['repeat'] > 1 else ''} per side"
            f"{' (medians)' if report['repeat'] > 1 else ''}, on {', '.join(a['providers'][:1])}"
            f"{', lean' if a['lean'] else ''}; "
            f"inputs {'from ' + report['inputs'] if report['inputs'] else 'random (seeded)'}")
    out = [head, f"  {'':<27}{'edgepack':>12}" + (f"{'onnxruntime':>14}{'ratio':>9}" if b else "")]
    for label, key, fmt in _ROWS:
        row = f"  {label:<27}{fmt(a[key]) if a[key] == a[key] else '-':>12}"
        if b:
            ratio = report["ratios"].get(key)
            row += f"{fmt(b[key]) if b[key] == b[key] else '-':>14}{f'{ratio:.3f}' if ratio else '':>9}"
        out.append(row)
    out.append(f"  (importing edgepack.runtime took {_ms(a['import_s'])} more, outside the times above)")
    if b:
        out.append("  outputs: " + _outputs_line(report, a["lean"]))
    out.append("  memory: " + budget_line(report["budget"]))
    out += [f"  warning: {w}" for w in a["warnings"]]
    return out


def _outputs_line(report: dict[str, Any], lean: bool) -> str:
    if report["outputs_identical"]:
        return "bit-identical to plain onnxruntime's"
    if report.get("outputs_mismatch"):
        return (f"NOT COMPARABLE: {report['outputs_mismatch']}; is {os.path.basename(report['baseline']['path'])} "
                "the model this bundle was made from?")
    diff = report["outputs_max_abs_diff"]
    text = "DIFFERENT from plain onnxruntime's" + (f" (largest difference {diff:.3g})" if diff is not None else "")
    if lean:
        text += ": lean mode turns prepacking off, so onnxruntime sums in another order"
    return text


def budget_line(b: dict[str, Any]) -> str:
    peak = f"peak {b['peak_mb']:.1f} MB"
    device = ("" if b["device_available_mb"] is None else
              f"; this device has {b['device_available_mb']} MB available"
              + ("" if b["fits_device"] else ": NOT ENOUGH"))
    if b["budget_mb"] is None:
        return f"{peak}; target {b['target']!r} sets no memory budget{device}"
    verdict = "fits" if b["fits"] else "DOES NOT FIT"
    return f"{peak} of the {b['budget_mb']} MB budget of {b['target']!r}: {verdict} ({100 * b['share']:.0f}%){device}"
