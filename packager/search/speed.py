"""The search's rule on speed: on a host that runs the target's kernels, a quantized recipe slower than fp32 is
not chosen unless the user allows it (--allow-slower). int8 is not faster by itself: static QDQ convolutions
ran up to 2.85x slower than fp32 on an x86 host (docs/QUANTIZATION.md).

Each candidate's model and the fp32 model run on the first eval samples in this process, rounds interleaved
(fidelity.metrics's timing), so that load from other processes hits both alike. The figures are timings:
they decide, and go into the search's timing record, not into the bundle's deterministic trial records.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import onnx

from edgepack.runtime.profile import Profile
from edgepack.runtime.ortconfig import session_options

from .. import modelfiles as files
from ..datasets import Samples
from ..fidelity.metrics import _time
from .trial import Trial

SAMPLES = 8      # eval samples each timing runs on
LIMIT = 3        # quantized candidates timed at most before the search falls back to float


class SpeedGate:
    """p50 of candidate models against the fp32 model, in this process."""

    def __init__(self, reference: onnx.ModelProto, samples: Samples, profile: Profile, folder: str):
        self.options, self.folder = session_options(profile), folder
        self.feeds = samples.feeds[:SAMPLES]
        self.reference = files.session(reference, folder, "speed_fp32.onnx", self.options)
        self.figures: dict[int, dict[str, float]] = {}

    def ratio(self, index: int, model: onnx.ModelProto) -> float:
        """The candidate's p50 over fp32's, measured side by side; kept under its trial index."""
        session = files.session(model, self.folder, "speed_candidate.onnx", self.options)
        fp32_ms, ms = _time([self.reference, session], self.feeds)
        self.figures[index] = {"p50_ms": ms, "fp32_p50_ms": fp32_ms, "ratio": ms / fp32_ms if fp32_ms else 1.0}
        return self.figures[index]["ratio"]


def not_slower(feasible: list[Trial], gate: SpeedGate, build: Callable[[Trial], onnx.ModelProto | None]
               ) -> tuple[list[Trial], list[dict[str, Any]]]:
    """The feasible trials (smallest first) without the quantized ones found slower than fp32, timing at most
    LIMIT of them; `build(t)` gives a trial's model (None: it quantizes nothing). Returns the trials kept and
    the ones set aside, for the report."""
    kept, slower, timed = [], [], 0
    for t in feasible:
        model = build(t)
        if model is None:
            kept.append(t)
            continue
        if timed >= LIMIT:
            continue
        timed += 1
        ratio = gate.ratio(t.index, model)
        if ratio <= 1.0:
            kept.append(t)
        else:
            slower.append({"trial": t.index, "ratio": round(ratio, 3)})
    return kept, slower
