"""Run the original and the packaged model side by side and measure what was lost, and what it costs in time.

Per output: top-1 agreement for class outputs (float, last axis of at least 2), cosine similarity (per
sample: the mean and the worst), the largest absolute difference, and accuracy against labels when the data
has them. Both models are timed on this machine, interleaved, and a quantized model slower than its fp32
original is flagged: int8 convolutions are often slower on x86 CPUs, dynamic int8 convolutions much slower.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import onnx

from edgepack.runtime.errors import OptionError, QuantizationError
from edgepack.runtime.profile import Profile
from edgepack.runtime.session import session_options

from ..datasets import Samples
from . import files
from .sanity import warn_labels

SLOWER = 1.10        # flag a model more than 10% slower: timing noise on a busy machine stays below that
TIMED_SAMPLES = 32
ROUNDS = 3


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def metrics(refs: list[np.ndarray], outs: list[np.ndarray], labels: np.ndarray | None) -> dict[str, Any]:
    ref, out = np.concatenate([r.ravel() for r in refs]), np.concatenate([o.ravel() for o in outs])
    if refs[0].dtype.kind != "f":
        return {"exact_match": float(np.mean(ref == out))}
    with np.errstate(all="ignore"):  # non-finite outputs are counted, not warned about by numpy
        cosines = [_cosine(r, o) for r, o in zip(refs, outs)]
    m: dict[str, Any] = {
        "nonfinite": int(np.sum(~np.isfinite(out) & np.isfinite(ref))),
        "cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines)),
        "max_abs_error": float(np.max(np.abs(ref.astype(np.float64) - out), initial=0.0)),
        "reference_max_abs": float(np.max(np.abs(ref), initial=0.0)),
    }
    if refs[0].ndim >= 2 and refs[0].shape[-1] >= 2:
        top_ref = np.concatenate([r.argmax(-1).ravel() for r in refs])
        top_out = np.concatenate([o.argmax(-1).ravel() for o in outs])
        m["top1_agreement"] = float(np.mean(top_ref == top_out))
        if labels is not None and labels.size == top_ref.size:
            m["reference_accuracy"] = float(np.mean(top_ref == labels.ravel()))
            m["accuracy"] = float(np.mean(top_out == labels.ravel()))
    return m


def _time(sessions: list, feeds: list[dict]) -> list[float]:
    """Median milliseconds per run of each session, rounds interleaved so that load changes hit both."""
    for s in sessions:
        s.run(None, feeds[0])
    per_run: list[list[float]] = [[] for _ in sessions]
    for _ in range(ROUNDS):
        for i, s in enumerate(sessions):
            for f in feeds:
                t0 = time.perf_counter()
                s.run(None, f)
                per_run[i].append(time.perf_counter() - t0)
    return [1000 * float(np.median(t)) for t in per_run]


def compare(reference: onnx.ModelProto, packaged: onnx.ModelProto, samples: Samples, held_out: bool,
            folder: str, reference_profile: Profile, packaged_profile: Profile
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fidelity, speed) of `packaged` against `reference` on `samples`, each run with its profile's
    session options on this machine's CPU."""
    ref_s = files.session(reference, folder, "reference.onnx", session_options(reference_profile))
    out_s = files.session(packaged, folder, "packaged.onnx", session_options(packaged_profile))
    names = [o.name for o in ref_s.get_outputs() if o.name in {p.name for p in out_s.get_outputs()}]
    refs: dict[str, list] = {n: [] for n in names}
    outs: dict[str, list] = {n: [] for n in names}
    for i, feeds in enumerate(samples):
        try:
            ref = ref_s.run(names, feeds)
        except Exception as e:
            raise OptionError(f"{os.path.basename(samples.source)}: sample {i} fails in the original model "
                              f"({files.first_line(e)}); check the data") from None
        try:
            out = out_s.run(names, feeds)
        except Exception as e:
            raise QuantizationError(f"the packaged model fails on sample {i} where the original runs "
                                    f"({files.first_line(e)})") from None
        for n, r, o in zip(names, ref, out):
            refs[n].append(np.asarray(r))
            outs[n].append(np.asarray(o))
    if names:
        warn_labels(samples, [np.concatenate(refs[names[0]])] if refs[names[0]][0].ndim == 2 else [])
    fidelity = {
        "data": os.path.basename(os.path.normpath(samples.source)), "samples": len(samples),
        "held_out": held_out, "labels": samples.labels is not None,
        "outputs": {n: metrics(refs[n], outs[n], samples.labels) for n in names},
    }
    ref_ms, out_ms = _time([ref_s, out_s], samples.feeds[:TIMED_SAMPLES])
    speed = {"reference_ms": ref_ms, "packaged_ms": out_ms, "ratio": out_ms / ref_ms if ref_ms else float("nan"),
             "runs": ROUNDS * min(len(samples), TIMED_SAMPLES),
             "slower": bool(out_ms > SLOWER * ref_ms)}
    return fidelity, speed
