"""Run the original and the packaged model side by side and measure what was lost, and what it costs in time.

Per output (kinds.py says which kind each is): top-1 agreement for class outputs, cosine similarity (per
sample: the mean and the worst; over all samples together for outputs of fewer than 8 values per sample),
the largest absolute and relative difference, and accuracy against labels when the data has them. Both
models are timed on this machine, interleaved, and a quantized model slower than its fp32 original is
flagged: int8 convolutions are often slower on x86 CPUs, dynamic int8 convolutions much slower.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import onnx

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile
from edgepack.runtime.ortconfig import session_options
from edgepack.runtime.text import error_line

from .. import modelfiles
from ..datasets import Samples
from ..quantize.sanity import warn_labels
from .kinds import SMALL, OutputKind, kind_of

SLOWER = 1.10        # flag a model more than 10% slower: timing noise on a busy machine stays below that
TIMED_SAMPLES = 20   # the packaged model's speed: 5 rounds of 20 runs each, as many runs as 3 of 32 were
ROUNDS = 3           # rounds of the other timings (the int8 formats, the search's speed rule)
SPEED_ROUNDS = 5     # the packaged model's speed: one ratio per round, their spread is the noise reported


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def _relative(ref: np.ndarray, diff: np.ndarray) -> float:
    """The largest |out - ref| / |ref|, with |ref| floored at 1e-3 of the output's largest magnitude (values
    near zero would otherwise make any difference infinitely large)."""
    scale = float(np.max(np.abs(ref), initial=0.0))
    if scale == 0 or not np.isfinite(scale):
        return 0.0 if not np.any(diff) else float("inf")
    return float(np.max(diff / np.maximum(np.abs(ref), 1e-3 * scale), initial=0.0))


def metrics(refs: list[np.ndarray], outs: list[np.ndarray], labels: np.ndarray | None, name: str = "",
            kinds: dict[str, OutputKind] | None = None) -> dict[str, Any]:
    """The fidelity figures of one output over all samples (refs and outs: one array per sample)."""
    ref, out = np.concatenate([r.ravel() for r in refs]), np.concatenate([o.ravel() for o in outs])
    if refs[0].dtype.kind != "f":
        return {"exact_match": float(np.mean(ref == out))}
    kind = kind_of(name, refs[0], kinds)
    if kind.kind == "ignore":
        return {"kind": kind.record()}
    small = refs[0].size < SMALL
    with np.errstate(all="ignore"):  # non-finite outputs are counted, not warned about by numpy
        cosines = [_cosine(ref, out)] if small else [_cosine(r, o) for r, o in zip(refs, outs)]
        diff = np.abs(ref.astype(np.float64) - out)
        m: dict[str, Any] = {
            "kind": kind.record(),
            "nonfinite": int(np.sum(~np.isfinite(out) & np.isfinite(ref))),
            "cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines)),
            "max_abs_error": float(np.max(diff, initial=0.0)),
            "max_rel_error": _relative(ref.astype(np.float64), diff),
            "reference_max_abs": float(np.max(np.abs(ref), initial=0.0)),
        }
    if small:  # one cosine over all samples: per sample, a number's cosine with another is always 1
        m["cosine_over"] = "all samples together"
    if kind.kind == "class":
        top_ref = np.concatenate([r.argmax(kind.axis).ravel() for r in refs])
        top_out = np.concatenate([o.argmax(kind.axis).ravel() for o in outs])
        m["top1_agreement"] = float(np.mean(top_ref == top_out))
        m["predictions"] = int(top_ref.size)
        if labels is not None and labels.size == top_ref.size:
            m["reference_accuracy"] = float(np.mean(top_ref == labels.ravel()))
            m["accuracy"] = float(np.mean(top_out == labels.ravel()))
    return m


def _timings(sessions: list, feeds: list[dict], rounds: int = ROUNDS) -> list[list[list[float]]]:
    """Seconds of each run, [session][round][run]: the sessions take turns run by run, so that a change of
    load from other processes hits them all alike (blocks of runs per session let it favour one)."""
    for s in sessions:
        s.run(None, feeds[0])
    out: list[list[list[float]]] = [[[] for _ in range(rounds)] for _ in sessions]
    for r in range(rounds):
        for f in feeds:
            for i, s in enumerate(sessions):
                t0 = time.perf_counter()
                s.run(None, f)
                out[i][r].append(time.perf_counter() - t0)
    return out


def _time(sessions: list, feeds: list[dict]) -> list[float]:
    """Median milliseconds per run of each session, runs interleaved (_timings)."""
    return [1000 * float(np.median([x for r in t for x in r])) for t in _timings(sessions, feeds)]


def speed(sessions: list, feeds: list[dict]) -> dict[str, Any]:
    """The packaged model's (sessions[1]) median time against the original's (sessions[0]), and the ratio in
    each round: their spread is the timing noise, and a speedup is claimed only when every round shows one."""
    ref, out = _timings(sessions, feeds, SPEED_ROUNDS)
    ref_ms, out_ms = (1000 * float(np.median([x for r in t for x in r])) for t in (ref, out))
    rounds = [round(float(np.median(o) / np.median(r)), 3) for r, o in zip(ref, out) if np.median(r) > 0]
    # the median of the rounds' ratios, so the ratio printed lies within the spread printed beside it (the ratio
    # of the pooled medians can fall outside it: 1.37x beside rounds of 1.21-1.31x, a new user saw)
    ratio = float(np.median(rounds)) if rounds else out_ms / ref_ms if ref_ms else float("nan")
    return {"reference_ms": ref_ms, "packaged_ms": out_ms, "ratio": ratio,
            "runs": SPEED_ROUNDS * len(feeds), "rounds": rounds,
            "slower": bool(out_ms > SLOWER * ref_ms and min(rounds, default=2) > 1)}   # beyond the noise too


def compare(reference: onnx.ModelProto, packaged: onnx.ModelProto, samples: Samples, held_out: bool,
            folder: str, reference_profile: Profile, packaged_profile: Profile,
            kinds: dict[str, OutputKind] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fidelity, speed) of `packaged` against `reference` on `samples`, each run with its profile's
    session options on this machine's CPU."""
    ref_s = modelfiles.session(reference, folder, "reference.onnx", session_options(reference_profile))
    out_s = modelfiles.session(packaged, folder, "packaged.onnx", session_options(packaged_profile))
    names = [o.name for o in ref_s.get_outputs() if o.name in {p.name for p in out_s.get_outputs()}]
    refs: dict[str, list] = {n: [] for n in names}
    outs: dict[str, list] = {n: [] for n in names}
    for i, feeds in enumerate(samples):
        try:
            ref = ref_s.run(names, feeds)
        except Exception as e:
            raise OptionError(f"{os.path.basename(samples.source)}: sample {i} fails in the original model "
                              f"({error_line(e)}); check the data") from None
        try:
            out = out_s.run(names, feeds)
        except Exception as e:
            raise QuantizationError(f"the packaged model fails on sample {i} where the original runs "
                                    f"({error_line(e)})") from None
        for n, r, o in zip(names, ref, out):
            refs[n].append(np.asarray(r))
            outs[n].append(np.asarray(o))
    if names:
        warn_labels(samples, [np.concatenate(refs[names[0]])] if refs[names[0]][0].ndim == 2 else [])
    fidelity = {
        "data": os.path.basename(os.path.normpath(samples.source)), "samples": len(samples),
        "held_out": held_out, "labels": samples.labels is not None,
        "outputs": {n: metrics(refs[n], outs[n], samples.labels, n, kinds) for n in names},
    }
    return fidelity, speed([ref_s, out_s], samples.feeds[:TIMED_SAMPLES])
