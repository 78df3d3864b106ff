"""The fidelity step: compare the packaged model with the original on held-out samples, and time both.

What goes into the manifest is deterministic (the same model and options give the same bundle): the
fidelity figures and the warnings drawn from them. Timings differ from run to run, so they are returned to
the caller (PackageResult.report["speed"], printed by the CLI) and not written into the bundle.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import numpy as np
import onnx

from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile

from .. import modelfiles
from ..datasets import Samples
from ..quantize.samples import load_for, random_samples
from .kinds import OutputKind, check_names
from .metrics import compare

ACCURACY_DROP = 0.01   # warn past one point of accuracy lost
AGREEMENT = 0.98       # without labels, warn when more than 2% of top-1 predictions change


def _clean(value: Any) -> Any:
    """JSON for the manifest: finite floats rounded to 6 significant digits, non-finite ones as null."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _warnings(fidelity: dict[str, Any]) -> list[str]:
    out = []
    for name, m in fidelity["outputs"].items():
        if "accuracy" in m and m["reference_accuracy"] - m["accuracy"] > ACCURACY_DROP:
            out.append(f"output {name!r}: accuracy fell from {100 * m['reference_accuracy']:.2f}% to "
                       f"{100 * m['accuracy']:.2f}% on {fidelity['samples']} samples")
        elif "accuracy" not in m and m.get("top1_agreement", 1.0) < AGREEMENT:
            out.append(f"output {name!r}: top-1 agrees with the original's on only "
                       f"{100 * m['top1_agreement']:.1f}% of its predictions")
        if m.get("nonfinite"):
            out.append(f"output {name!r}: the packaged model produces {m['nonfinite']} non-finite values (inf or "
                       "NaN) where the original's are finite")
    return out


def same_data(a: str | os.PathLike | None, b: str | os.PathLike | None) -> bool:
    """Whether two sample paths (an .npz file or a folder of them) are the same data: the same file or folder,
    or files with the same bytes."""
    if not isinstance(a, (str, os.PathLike)) or not isinstance(b, (str, os.PathLike)):
        return False  # arrays given in memory, or nothing
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.isfile(a) and os.path.isfile(b) and os.path.getsize(a) == os.path.getsize(b):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                while True:
                    x, y = fa.read(1 << 20), fb.read(1 << 20)
                    if x != y:
                        return False
                    if not x:
                        return True
    except OSError:
        return False
    return False


def _digest(feeds: dict[str, Any]) -> bytes:
    h = hashlib.sha256()
    for name in sorted(feeds):
        a = np.ascontiguousarray(feeds[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.digest()


def overlap(evaluated: Samples, calibrated: Samples) -> int:
    """How many samples of `evaluated` are also in `calibrated` (the same feeds, bit for bit)."""
    seen = {_digest(f) for f in calibrated.feeds}
    return sum(1 for f in evaluated.feeds if _digest(f) in seen)


def check(reference: onnx.ModelProto, packaged: onnx.ModelProto, eval_data: str | None, fallback: Samples | None,
          reference_profile: Profile, packaged_profile: Profile, kinds: dict[str, OutputKind] | None = None,
          calibration: str | os.PathLike | None = None) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(fidelity, speed, warnings). Samples: `eval_data` (held out unless it is the `calibration` data), else
    the calibration samples, else random inputs; the fidelity record says which."""
    samples: Samples | None
    reused = same_data(eval_data, calibration)
    shared = 0
    if eval_data:
        samples = load_for(reference, eval_data, "eval data")
        if not reused and calibration:
            calibrated = fallback or load_for(reference, os.fspath(calibration), "calibration data")
            shared = overlap(samples, calibrated)
        held_out = not reused and not shared
    else:
        samples, held_out = fallback or random_samples(reference), False
    if samples is None:
        return {"skipped": "no samples: the model's inputs have unknown shapes; give --eval DATA"}, {}, []
    with modelfiles.workdir() as folder:
        try:
            check_names(kinds or {}, [o.name for o in reference.graph.output])
            fidelity, speed = compare(reference, packaged, samples, held_out, folder, reference_profile,
                                      packaged_profile, kinds)
        except OptionError:
            if eval_data or fallback:
                raise
            return {"skipped": "the original model does not run on random inputs; give --eval DATA"}, {}, []
    fidelity, speed = _clean(fidelity), _clean(speed)
    warned = _warnings(fidelity)
    if shared:
        warned.insert(0, f"{shared} of the {len(samples)} --eval samples are also calibration samples the quantizer "
                         "was fitted on, so these figures are not held out and are optimistic; give samples the "
                         "calibration did not see")
    if reused:
        warned.insert(0, f"--eval {os.path.basename(os.fspath(eval_data or ''))} is the calibration data: the "
                         "quantizer was fitted on those samples, so these figures are not held out and are "
                         "optimistic; give samples the calibration did not see")
    return fidelity, speed, warned


def speed_warning(speed: dict[str, Any]) -> list[str]:
    if not speed.get("slower"):
        return []
    return [f"the packaged model ran {speed['ratio']:.2f}x slower than the original on this machine "
            f"({speed['packaged_ms']:.3g} ms against {speed['reference_ms']:.3g} ms per run): a smaller model is "
            "not faster by itself on every CPU; measure on the target, or try another --quantize mode"]
