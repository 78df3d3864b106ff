"""Measuring a candidate model against the original on the eval samples, many times over.

The original's outputs are computed once; each candidate then runs on the same samples with the target's
session options, and its outputs are scored with the metrics the fidelity report uses
(fidelity.metrics.metrics), so that the search's figures and the bundle's report agree.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

from edgepack.packager.errors import QuantizationError
from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile
from edgepack.runtime.ortconfig import session_options
from edgepack.runtime.text import error_line

from .. import modelfiles as files
from ..datasets import Samples
from ..fidelity.kinds import OutputKind, check_names
from ..fidelity.metrics import metrics
from .budget import Budget, resolution


class Evaluator:
    """Runs candidates on `samples` and compares their outputs with the original's."""

    def __init__(self, reference: onnx.ModelProto, samples: Samples, profile: Profile, folder: str,
                 kinds: dict[str, OutputKind] | None = None):
        self.samples, self.profile, self.folder, self.kinds = samples, profile, folder, kinds or {}
        session = files.session(reference, folder, "reference.onnx", session_options(profile))
        self.names = [o.name for o in session.get_outputs()]
        check_names(self.kinds, self.names)
        self.refs: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        for i, feeds in enumerate(samples):
            try:
                outs = session.run(self.names, feeds)
            except Exception as e:
                raise OptionError(f"{os.path.basename(samples.source)}: sample {i} fails in the original model "
                                  f"({error_line(e)}); check the eval data") from None
            for n, o in zip(self.names, outs):
                self.refs[n].append(np.asarray(o))

    def outputs(self, model: onnx.ModelProto, limit: int | None = None) -> dict[str, dict[str, Any]]:
        """Per output, the fidelity metrics of `model` on the first `limit` samples (default all)."""
        session = files.session(model, self.folder, "candidate.onnx", session_options(self.profile))
        feeds = self.samples.feeds[:limit]
        outs: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        for i, f in enumerate(feeds):
            try:
                got = session.run(self.names, f)
            except Exception as e:
                raise QuantizationError(f"the candidate fails on eval sample {i} ({error_line(e)})") from None
            for n, o in zip(self.names, got):
                outs[n].append(np.asarray(o))
        labels = None if self.samples.labels is None else self.samples.labels[:len(feeds)]
        return {n: metrics(self.refs[n][:len(feeds)], outs[n], labels, n, self.kinds) for n in self.names}

    def figures(self, model: onnx.ModelProto, limit: int | None = None) -> dict[str, Any]:
        """The worst output's accuracy drop (points), agreement and mean cosine (each None if not measurable)."""
        return summarize(self.outputs(model, limit))

    def check_budget(self, budget: Budget) -> list[str]:
        """Refuse a fidelity budget these samples and outputs cannot measure, before any search; return notes
        on budgets the samples are too few to hold (budget.resolution)."""
        outputs = self.outputs_of_reference()
        ref = summarize(outputs)
        needs = {"max_accuracy_drop": ("accuracy_drop", "the eval data has no 'labels' array (or its labels do not "
                                        "match a class output); use --min-agreement or --min-cosine instead"),
                 "min_agreement": ("agreement", "no output holds class scores (shape (1, classes) per sample); "
                                   "name one with --output-kind NAME=class[:AXIS], or use --min-cosine"),
                 "min_cosine": ("cosine", "no output is a float tensor"),
                 "min_mean_cosine": ("cosine_mean", "no output is a float tensor")}
        for name, (figure, why) in needs.items():
            if getattr(budget, name) is not None and ref[figure] is None:
                raise OptionError(f"--{name.replace('_', '-')} cannot be measured: {why}")
        predictions = min([m["predictions"] for m in outputs.values() if "predictions" in m] or [0])
        return resolution(budget, len(self.samples), predictions or None)

    def outputs_of_reference(self) -> dict[str, dict[str, Any]]:
        labels = self.samples.labels
        return {n: metrics(self.refs[n], self.refs[n], labels, n, self.kinds) for n in self.names}


def _worst(cosines: list[Any]) -> float | None:
    return None if not cosines else min(-1.0 if c is None or not np.isfinite(c) else c for c in cosines)


def summarize(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures budgets are held to, over all outputs (the worst one counts)."""
    drops = [100 * (m["reference_accuracy"] - m["accuracy"]) for m in outputs.values() if "accuracy" in m]
    agree = [m["top1_agreement"] for m in outputs.values() if "top1_agreement" in m]
    worst = [m["cosine_min"] for m in outputs.values() if "cosine_min" in m]
    means = [m["cosine_mean"] for m in outputs.values() if "cosine_mean" in m]
    ref_acc = [m["reference_accuracy"] for m in outputs.values() if "reference_accuracy" in m]
    acc = [m["accuracy"] for m in outputs.values() if "accuracy" in m]
    return {
        "accuracy_drop": max(drops) if drops else None,
        "accuracy": min(acc) if acc else None,
        "reference_accuracy": min(ref_acc) if ref_acc else None,
        "agreement": min(agree) if agree else None,
        # non-finite outputs make the cosine NaN: scored as the worst cosine, so no budget takes them for "unmeasured"
        "cosine": _worst(worst), "cosine_mean": _worst(means),
        "nonfinite": sum(m.get("nonfinite", 0) for m in outputs.values()),
    }
