"""The conversion check: run the converted ONNX model with onnxruntime on the example inputs and compare
its outputs with the source model's own. Never trust a converter's return value."""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

import numpy as np
import onnx

from edgepack.packager.errors import ConversionMismatch, ExportFailed
from edgepack.runtime.text import error_line


def onnx_session(model: onnx.ModelProto, what: str, lean: bool = False) -> Any:
    """A plain onnxruntime session (CPU, default optimizations) on `model`. lean: without prepacked weights or
    memory arena, so that the session holds the weights once (a check runs it on a few inputs only)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if lean:
        so.add_session_config_entry("session.disable_prepacking", "1")
        so.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportFailed(f"{what}: onnxruntime cannot load the converted model: {error_line(e, last=True)}") from e


def run_session(session: Any, feeds: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Outputs of `session` on `feeds`, by output name."""
    try:
        values = session.run(None, dict(feeds))
    except Exception as e:
        raise ExportFailed(f"{what}: onnxruntime cannot run the converted model on the example inputs: "
                           f"{error_line(e, last=True)}") from e
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), values)}


def run_onnx(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Outputs of plain onnxruntime (CPU, default optimizations) on `feeds`, by output name."""
    return run_session(onnx_session(model, what), feeds, what)


def compare(what: str, got: Mapping[str, np.ndarray], expected: Mapping[str, Any], rtol: float,
            atol: float) -> dict[str, Any]:
    """Check every expected output: floats within |got - expected| <= atol + rtol * |expected|, everything
    else (labels, indices, booleans, strings) exactly. Returns what was measured, for provenance."""
    worst, exact = 0.0, []
    for name, ref in expected.items():
        out, ref = np.asarray(got[name]), np.asarray(ref)
        if out.shape != ref.shape:
            raise ConversionMismatch(f"{what}: output {name!r} has shape {list(out.shape)} but the source model "
                                     f"gives {list(ref.shape)}")
        if ref.dtype.kind in "fc":
            worst = max(worst, _close(what, name, out, ref, rtol, atol))
        else:
            _equal(what, name, out, ref)
            exact.append(name)
    return {"rtol": rtol, "atol": atol, "max_abs_diff": worst, "exact": exact}


def _close(what: str, name: str, out: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> float:
    if out.dtype.kind not in "fc":
        raise ConversionMismatch(f"{what}: output {name!r} is {out.dtype} but the source model gives {ref.dtype}")
    a, b = out.astype(np.float64), ref.astype(np.float64)
    ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
    worst = float(diff.max()) if diff.size else 0.0
    if not ok.all():
        i = np.unravel_index(int(np.argmax(np.where(ok, -1.0, diff))), diff.shape)
        raise ConversionMismatch(
            f"{what}: output {name!r} differs from the source model by up to {worst:.3g} ({int((~ok).sum())} of "
            f"{ok.size} values beyond |diff| <= {atol:g} + {rtol:g} * |source|; at index {list(map(int, i))}: "
            f"onnx {a[i]:.6g}, source {b[i]:.6g}); check the model, or allow a larger rtol/atol if the "
            "difference is expected")
    return worst


def _equal(what: str, name: str, out: np.ndarray, ref: np.ndarray) -> None:
    # as objects when the kinds differ: onnxruntime gives strings as object arrays, numpy as '<U'
    same = np.asarray(out == ref) if out.dtype.kind == ref.dtype.kind else out.astype(object) == ref.astype(object)
    if not np.all(same):
        bad = np.flatnonzero(~np.asarray(same, bool).reshape(-1))
        k = int(bad[0])
        at = lambda a: a.reshape(-1)[k:k + 1].tolist()[0]
        raise ConversionMismatch(
            f"{what}: output {name!r}: {len(bad)} of {ref.size} values differ from the source model's (first at "
            f"flat index {k}: onnx {at(out)!r}, source {at(ref)!r}); labels must match exactly")
