"""Never trust a rewrite: the pruned model must pass onnx.checker and run in onnxruntime, and when
calibration data is there, how far its outputs moved is measured and reported."""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort

from edgepack.runtime.text import clip

from ..dims import current_shapes
from .probe import Probe


class PruneBug(RuntimeError):
    """The rewritten graph is invalid: a bug in a pruning rule, not bad input."""


def _random_feeds(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds, given = {}, current_shapes()
    for i in session.get_inputs():
        shape = list(given[i.name]) if i.name in given else [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dtype = np.float32 if "float" in i.type else np.int64 if "int" in i.type else np.bool_
        feeds[i.name] = rng.standard_normal(shape).astype(dtype) if dtype is np.float32 else np.zeros(shape, dtype)
    return feeds


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_runs(original: onnx.ModelProto, pruned: onnx.ModelProto, feeds: dict[str, np.ndarray] | None) -> None:
    """onnx.checker, then one run on `feeds`; without feeds, on random ones if the original runs on them
    (dynamic dimensions set to 1 do not suit every model: then loading is all that is checked)."""
    if pruned.ByteSize() >= (1 << 31) - 1:
        return
    try:
        onnx.checker.check_model(pruned)
        session = _session(pruned)
    except Exception as e:
        raise PruneBug(f"the pruned graph is invalid ({clip(str(e).splitlines()[0], 300)}); please report it with "
                       "the model") from e
    if feeds is None:
        feeds = _random_feeds(session)
        try:
            _session(original).run(None, feeds)
        except Exception:
            return
    try:
        session.run(None, feeds)
    except Exception as e:
        raise PruneBug(f"the pruned graph does not run ({clip(str(e).splitlines()[0], 300)}); please report it "
                       "with the model") from e


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))


def fidelity(original: onnx.ModelProto, pruned: onnx.ModelProto,
             samples: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Pruned against original on the samples, first output: cosine (mean, min), and for a [batch, classes]
    output the top-1 agreement."""
    name = original.graph.output[0].name
    a, b = Probe(original, [name]), Probe(pruned, [name])
    cos, agree = [], []
    for feeds in samples:
        x, y = a.run(feeds)[name], b.run(feeds)[name]
        cos.append(_cos(x, y))
        if x.ndim == 2 and x.shape[-1] > 1 and np.issubdtype(x.dtype, np.floating):  # [batch, classes]
            agree.append(np.mean(x.argmax(-1) == y.argmax(-1)))
    out = {"output": name, "samples": len(cos), "cosine_mean": round(float(np.mean(cos)), 6),
           "cosine_min": round(float(np.min(cos)), 6)}
    if agree:
        out["top1_agreement"] = round(float(np.mean(agree)), 6)
    return out
