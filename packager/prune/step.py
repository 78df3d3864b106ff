"""The packager's prune step: options from package()/the CLI, calibration data, provenance and report."""

from __future__ import annotations

import os
from typing import Any

import onnx

from edgepack.runtime.errors import OptionError

from ..datasets import load_samples
from . import PruneOptions, prune_model


def model_inputs(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def options_from(prune: str | PruneOptions | None, scope: str | None, criterion: str | None,
                 reconstruct: bool, round_to: int | None = None) -> PruneOptions | None:
    """Typed options from package()'s arguments; companions without --prune are an error, not ignored."""
    if prune is None:
        given = [flag for flag, v in (("--prune-scope", scope), ("--prune-criterion", criterion),
                                      ("--reconstruct", reconstruct or None), ("--prune-round-to", round_to))
                 if v is not None]
        if given:
            raise OptionError(f"{', '.join(given)} needs --prune METHOD:RATIO (e.g. --prune channels:0.3)")
        return None
    extra = {k: v for k, v in (("scope", scope), ("criterion", criterion), ("round_to", round_to)) if v is not None}
    if isinstance(prune, PruneOptions):
        if extra or reconstruct:
            raise OptionError("give scope, criterion and reconstruct inside PruneOptions, not beside it")
        return prune
    return PruneOptions.parse(prune, reconstruct=bool(reconstruct), **extra)


def prune_step(model: onnx.ModelProto, options: PruneOptions, calibration: str | os.PathLike | None
               ) -> tuple[onnx.ModelProto, dict[str, Any], dict[str, Any]]:
    """Prune `model`; returns the pruned model, its provenance step, and its report."""
    samples = load_samples(calibration, model_inputs(model)) if calibration is not None else None
    result = prune_model(model, options, samples.feeds if samples is not None else None)
    step = {"name": "prune", "options": {**options.to_dict(), "calibration_samples": len(samples or [])}}
    return result.model, step, result.report
