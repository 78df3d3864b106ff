"""Measuring what a model costs on this device, in a fresh child process per measurement.

A child process starts with nothing loaded, so its peak RSS is the model's real footprint (Python, numpy
and onnxruntime included, as a deployed process would have them). The same child code runs the baseline
(plain onnxruntime on an .onnx file) so the two are compared like for like.

What a child reports (seconds, MB):
    import_s            importing edgepack.runtime (bundles only; outside the time to first inference, as
                        importing onnxruntime is for both)
    open_s              bundle: header, manifest, profile, device check; baseline: 0
    session_s           bundle: decode and check the graph and tensors while onnxruntime builds its session
                        from them; baseline: onnxruntime reads the .onnx file and builds its session
    first_run_s         the first run
    first_inference_s   open_s + session_s + first_run_s: from the call that opens the model to its first output
    load_cpu_s          CPU time (all threads) spent opening and building the session
    peak_load_mb        peak RSS (VmHWM) once the session is built, before any run
    peak_mb             peak RSS after all the runs
    steady_rss_mb       RSS after all the runs
    latencies_s         each run after the first
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from typing import Any
from collections.abc import Callable

from . import errors
from .errors import OptionError, SessionError

_CHILD = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
kind, path = cfg["kind"], cfg["path"]
if cfg["pin_malloc"] and kind == "onnx":  # the allocator setting edgepack.runtime.load applies (runtime/malloc.py)
    import ctypes
    ctypes.CDLL(None).mallopt(-3, 128 * 1024)
import numpy as np
import onnxruntime as ort
def status(key):  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def say(tag, obj):
    print(tag, json.dumps(obj), flush=True)
out = {"import_peak_mb": status("VmHWM:"), "import_rss_mb": status("VmRSS:"), "warnings": []}
say("EDGEPACK-PROGRESS", {"stage": "load"})
if kind == "bundle":
    import warnings
    t = time.perf_counter()
    from edgepack.runtime import load
    out["import_s"] = time.perf_counter() - t
    t0, c0 = time.perf_counter(), cpu()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            key = bytes.fromhex(cfg["public_key"]) if cfg["public_key"] else None
            s = load(path, target=cfg["target"], force=cfg["force"], lean=cfg["lean"], public_key=key)
        except Exception as e:  # the parent raises it again, as the same type where it is edgepack's
            say("EDGEPACK-ERROR", {"type": type(e).__name__, "message": str(e)})
            sys.exit(1)
    out["warnings"] = [str(w.message) for w in caught]
    out["open_s"], out["session_s"] = s.stats.open_s, s.stats.session_s
    out["providers"], out["lean"] = s.providers, s.stats.lean
    specs = [(i.name, i.dtype, i.shape) for i in s.inputs]
    run = lambda f: list(s.run(f).values())
    output_names = [o.name for o in s.outputs]
else:
    out["import_s"] = 0.0
    t0, c0 = time.perf_counter(), cpu()
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out["open_s"], out["session_s"] = 0.0, time.perf_counter() - t0
    out["providers"], out["lean"] = s.get_providers(), False
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_,
             "tensor(float16)": np.float16, "tensor(double)": np.float64}
    specs = [(i.name, types.get(i.type), tuple(d if isinstance(d, int) else None for d in i.shape))
             for i in s.get_inputs()]
    run = lambda f: s.run(None, f)
    output_names = [o.name for o in s.get_outputs()]
t_loaded = time.perf_counter()
out["load_cpu_s"] = cpu() - c0
out["peak_load_mb"] = status("VmHWM:")
if cfg["feeds"]:
    feeds = dict(np.load(cfg["feeds"]))
    feeds.pop("labels", None)
else:  # the same seeded feeds on both sides: --shape or recorded shapes, else dynamic dimensions 1; ints 0 or 1
    rng = np.random.default_rng(0)
    fixed = lambda d: isinstance(d, int) and d > 0
    given, recorded = cfg["shapes"], cfg["recorded"]
    unknown = [n for n in given if n not in [s[0] for s in specs]]
    bad = [n for n, _, shape in specs if n in given and (len(given[n]) != len(shape) or
           any(fixed(d) and d != g for d, g in zip(shape, given[n])))]
    if unknown or bad:
        say("EDGEPACK-ERROR", {"type": "OptionError", "message": f"--shape: {unknown or bad} "
            f"{'is not an input' if unknown else 'does not fit the input'}; the inputs are "
            + ", ".join(f"{n} {list(shape)}" for n, _, shape in specs)})
        sys.exit(1)
    def dims(n, shape):
        for known in (given.get(n), recorded.get(n)):
            if known and len(known) == len(shape) and all(not fixed(d) or d == k for d, k in zip(shape, known)):
                return list(known), False
        return [d if fixed(d) else 1 for d in shape], not all(fixed(d) for d in shape)
    feeds, guessed = {}, []
    for n, dt, shape in specs:
        sizes, guess = dims(n, shape)
        guessed += [f"{n} [{', '.join(str(d) if fixed(d) or (isinstance(d, str) and d) else '?' for d in shape)}]"
                    ] if guess else []
        try:
            made = rng.standard_normal(sizes) if np.dtype(dt).kind == "f" else rng.integers(0, 2, sizes)
            feeds[n] = made.astype(dt)
        except (MemoryError, ValueError) as e:
            say("EDGEPACK-ERROR", {"type": "InputError", "message": f"random input {n!r} of shape {sizes} cannot "
                f"be made here ({str(e)[:120]}); give a smaller --shape, or pass --inputs FEEDS.npz"})
            sys.exit(1)
t1 = time.perf_counter()
try:
    first = run(feeds)
except Exception as e:
    if cfg["feeds"] or not guessed:
        raise
    text = [line for line in str(e).splitlines() if line.strip()]
    say("EDGEPACK-ERROR", {"type": "InputError", "message": (text[-1] if text else type(e).__name__)[:400]
        + f"; the shape of {', '.join(guessed)} is not known (each dynamic dimension was set to 1): give it with "
        "--shape NAME=D0,D1,... or --inputs FEEDS.npz"})
    sys.exit(1)
out["first_run_s"] = time.perf_counter() - t1
out["first_inference_s"] = out["open_s"] + out["session_s"] + out["first_run_s"]
lat, last = [], time.perf_counter()
for i in range(cfg["runs"]):
    t = time.perf_counter()
    run(feeds)
    lat.append(time.perf_counter() - t)
    if t - last > cfg["progress_s"]:
        say("EDGEPACK-PROGRESS", {"stage": "runs", "done": i + 1, "runs": cfg["runs"]})
        last = t
out["latencies_s"] = lat
out["peak_mb"] = status("VmHWM:")
out["steady_rss_mb"] = status("VmRSS:")
if cfg["outputs"]:
    np.savez(cfg["outputs"], *first, names=np.array(output_names, dtype=str))
say("EDGEPACK-MEASURE", out)
"""


def measure_child(kind: str, path: str | os.PathLike, feeds: str | os.PathLike | None = None, runs: int = 0,
                  timeout: float = 3600, pin_malloc: bool = False, target: str | None = None,
                  force: bool = False, lean: bool | None = None, outputs: str | None = None,
                  progress: Callable[[dict[str, Any]], None] | None = None,
                  progress_s: float = 1.0, shapes: dict[str, Any] | None = None,
                  recorded: dict[str, Any] | None = None, public_key: bytes | None = None) -> dict[str, Any]:
    """Load `path` (kind "bundle" or "onnx") in a fresh Python process, run it once plus `runs` times, and
    return its figures (see the module's docstring).

    pin_malloc: for kind "onnx", apply the allocator setting edgepack's load() applies, to compare like for
    like (bundles always get it). target, force, lean: passed to load() for bundles. outputs: save the
    first run's outputs to this .npz. progress: called with the child's progress reports, one every
    `progress_s` seconds at most. shapes: input name -> shape for random feeds (--shape); recorded: the shapes
    the packager recorded from calibration or evaluation data, used for inputs `shapes` does not name.
    public_key: the raw 32-byte key load() checks the bundle's signature with."""
    if kind not in ("bundle", "onnx"):
        raise OptionError(f"kind must be 'bundle' or 'onnx', got {kind!r}")
    cfg = {"kind": kind, "path": os.fspath(path), "feeds": os.fspath(feeds) if feeds else None, "runs": runs,
           "pin_malloc": pin_malloc, "target": target, "force": force, "lean": lean, "outputs": outputs,
           "progress_s": progress_s, "shapes": {k: list(v) for k, v in (shapes or {}).items()},
           "recorded": {k: list(v) for k, v in (recorded or {}).items()},
           "public_key": public_key.hex() if public_key else None}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    child_err = proc.stderr
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(child_err), daemon=True)  # never blocks the child
    drain.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    result = error = None
    try:
        for line in proc.stdout:
            tag, _, body = line.partition(" ")
            if tag == "EDGEPACK-MEASURE":
                result = json.loads(body)
            elif tag == "EDGEPACK-ERROR":
                error = json.loads(body)
            elif tag == "EDGEPACK-PROGRESS" and progress is not None:
                progress(json.loads(body))
        proc.wait()
    finally:
        killer.cancel()
        drain.join(5)
    if result is not None:
        return result
    if error is not None:
        cls = getattr(errors, error["type"], None)
        if isinstance(cls, type) and issubclass(cls, errors.EdgepackError):
            raise _rebuild(cls, error["message"])
        raise SessionError(f"measuring {os.fspath(path)} failed: {error['type']}: {error['message']}")
    tail = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in stderr if line.strip()]  # no colour codes
    reason = tail[-1] if tail else f"it exited with status {proc.returncode}"
    if proc.returncode in (-9, 137) and not tail:
        reason = f"killed after {timeout:.0f} s, or out of memory"
    raise SessionError(f"measuring {os.fspath(path)} failed: {reason}")


def _rebuild(cls: type, message: str) -> Exception:
    """An edgepack error of type `cls` carrying `message` (most take structured arguments, not a message)."""
    e: Exception = Exception.__new__(cls)
    Exception.__init__(e, message)
    return e
