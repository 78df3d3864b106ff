"""Does the quantized model load and run in onnxruntime, with the session options the device will use?

Checked in a child process: onnxruntime can crash outright on a quantizer's output (1.32 segfaults in its
NCHWc layout pass on some fp16 graphs at optimization level "all"), and a crash must become an error
message, not take the packager down. When only the highest optimization levels crash, the bundle is
recorded with the highest level that works (the runtime applies the bundle's profile) and a warning.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import onnx

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.profile import Profile
from edgepack.runtime.text import clip

from .. import modelfiles

_CHILD = r"""
import json, sys
import numpy as np
import onnxruntime as ort
from edgepack.runtime.profile import profile_from_dict
from edgepack.runtime.ortconfig import session_options
from edgepack.runtime.text import clip
model, feeds, profile = sys.argv[1], sys.argv[2], profile_from_dict(json.loads(sys.argv[3]))
options = session_options(profile)
options.log_severity_level = 4  # failures come back as exceptions
step = "loading"
try:
    s = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    step = "running"
    if feeds != "-":
        s.run(None, dict(np.load(feeds)))
except Exception as e:
    print(f"EDGEPACK-LOADCHECK {step}: " + clip((str(e).strip().splitlines() or [type(e).__name__])[0], 300))
    sys.exit(1)
"""

_LOWER = {"all": ("extended", "basic", "disable"), "extended": ("basic", "disable"), "basic": ("disable",),
          "disable": ()}


def _try(model_path: str, feeds_path: str, profile: Profile, timeout: float) -> tuple[int, str]:
    """(exit code, "load ..." or "run ..." and onnxruntime's message) of one try in a child process."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, model_path, feeds_path, json.dumps(profile.to_dict())],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"no answer within {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("EDGEPACK-LOADCHECK ")]
    message = lines[-1].split(" ", 1)[1] if lines else clip((proc.stderr.strip().splitlines() or [""])[-1], 300)
    return proc.returncode, message


def _describe(code: int, message: str) -> str:
    if code < 0:
        try:
            return f"onnxruntime crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"onnxruntime stopped ({message})"
    return message


def _reference_runs(reference: onnx.ModelProto, feeds: dict | None, folder: str) -> bool:
    try:
        modelfiles.session(reference, folder, "loadcheck_reference.onnx").run(None, feeds)
        return True
    except Exception:
        return False


def check_loads(model: onnx.ModelProto, profile: Profile, feeds: dict | None, folder: str,
                reference: onnx.ModelProto | None = None, timeout: float = 600) -> tuple[Profile, str | None]:
    """(the profile to record, a warning or None). Raises QuantizationError when no setting loads and runs
    it on `feeds`. `reference`: the unquantized model, given when `feeds` are made up (random): a run that
    fails on it too proves nothing about the quantized one."""
    path = modelfiles.save(model, folder, "loadcheck.onnx")
    feeds_path = "-"
    if feeds is not None:
        feeds_path = os.path.join(folder, "loadcheck_feeds.npz")
        np.savez(feeds_path, **feeds)

    def works(code: int, message: str) -> bool:  # a run failing on made-up feeds the original fails on too
        return code == 0 or (code > 0 and message.startswith("running") and reference is not None
                             and not _reference_runs(reference, feeds, folder))

    code, message = _try(path, feeds_path, profile, timeout)
    if works(code, message):
        return profile, None
    first = _describe(code, message)
    level = profile.session.graph_optimization_level
    if code < 0:  # a crash: an optimizer bug is the usual cause, so try the lower levels
        for lower in _LOWER[level]:
            candidate = dataclasses.replace(profile, session=dataclasses.replace(profile.session,
                                                                                 graph_optimization_level=lower))
            if works(*_try(path, feeds_path, candidate, timeout)):
                return candidate, (f"{first} loading or running the quantized model at graph optimization level "
                                   f"{level!r}; it works at {lower!r}, which the bundle records for the device")
    raise QuantizationError(f"the quantized model fails in onnxruntime ({first}); a quantizer bug: exclude the "
                            "node it names (--exclude-nodes), or try --per-tensor or another --quantize mode")
