"""Measuring what a model costs on this device, in a fresh child process per measurement.

A child process starts with nothing loaded, so its peak RSS is the model's real footprint (Python, numpy
and onnxruntime included, as a deployed process would have them). The same child code runs the baseline
(plain onnxruntime on an .onnx file) so the two are compared like for like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from .errors import OptionError, SessionError

_CHILD = r"""
import json, resource, sys, time
kind, path, feeds_path, runs, pin = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
if pin and kind == "onnx":  # the allocator setting edgepack.runtime.load applies (runtime/malloc.py)
    import ctypes
    ctypes.CDLL(None).mallopt(-3, 128 * 1024)
import numpy as np
import onnxruntime as ort
def peak_mb():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
out = {"import_peak_mb": peak_mb()}
t0 = time.perf_counter()
if kind == "bundle":
    from edgepack.runtime import load
    s = load(path)
    names = [i.name for i in s.inputs]
    run = lambda f: s.run(f)
    specs = [(i.name, i.dtype, i.shape) for i in s.inputs]
else:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    run = lambda f: s.run(None, f)
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_,
             "tensor(float16)": np.float16, "tensor(double)": np.float64}
    specs = [(i.name, types.get(i.type), tuple(d if isinstance(d, int) else None for d in i.shape))
             for i in s.get_inputs()]
out["load_s"] = time.perf_counter() - t0
out["load_peak_mb"] = peak_mb()
if feeds_path != "-":
    feeds = dict(np.load(feeds_path))
    feeds.pop("labels", None)
else:
    rng = np.random.default_rng(0)
    feeds = {n: (rng.standard_normal([d or 1 for d in shape]).astype(dt) if np.dtype(dt).kind == "f"
                 else np.zeros([d or 1 for d in shape], dt)) for n, dt, shape in specs}
t1 = time.perf_counter()
run(feeds)
out["first_run_s"] = time.perf_counter() - t1
out["first_inference_s"] = time.perf_counter() - t0
lat = []
for _ in range(runs):
    t = time.perf_counter()
    run(feeds)
    lat.append(time.perf_counter() - t)
out["latencies_s"] = lat
out["peak_mb"] = peak_mb()
out["steady_rss_mb"] = rss_mb()
print("EDGEPACK-MEASURE " + json.dumps(out))
"""


def measure_child(kind: str, path: str | os.PathLike, feeds: str | os.PathLike | None = None, runs: int = 0,
                  timeout: float = 600, pin_malloc: bool = False) -> dict[str, Any]:
    """Load `path` (kind "bundle" or "onnx") in a fresh Python process, run it once plus `runs` times, and
    return its figures: peak RSS (MB) after load and overall, load and first-inference times, latencies.

    pin_malloc: for kind "onnx", apply the allocator setting edgepack's load() applies, to compare like for
    like (bundles always get it)."""
    if kind not in ("bundle", "onnx"):
        raise OptionError(f"kind must be 'bundle' or 'onnx', got {kind!r}")
    cmd = [sys.executable, "-c", _CHILD, kind, os.fspath(path), os.fspath(feeds) if feeds else "-", str(runs),
           "1" if pin_malloc else "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("EDGEPACK-MEASURE "):
            return json.loads(line[len("EDGEPACK-MEASURE "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()
    raise SessionError(f"measuring {os.fspath(path)} failed: {tail[-1] if tail else 'no output'}")
