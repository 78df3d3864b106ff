"""The packager's prune step: options from package()/the CLI, calibration data, provenance and report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import onnx

from edgepack.runtime.errors import OptionError

from ..datasets import load_samples
from ..quantize.samples import scalar_inputs
from ..options import build
from . import PruneOptions, prune_model


def model_inputs(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def options_from(prune: str | PruneOptions | Mapping[str, Any] | None, scope: str | None, criterion: str | None,
                 reconstruct: bool, round_to: int | None = None) -> PruneOptions | None:
    """Typed options from package()'s arguments: a spec string refined by the flat companions, or a PruneOptions
    or dict of its fields holding them; companions without --prune are an error, not ignored."""
    flat = [(flag, v) for flag, v in (("--prune-scope", scope), ("--prune-criterion", criterion),
                                      ("--reconstruct", reconstruct or None), ("--prune-round-to", round_to))
            if v is not None]
    if prune is None:
        if flat:
            raise OptionError(f"{', '.join(f for f, _ in flat)} needs --prune METHOD:RATIO (e.g. --prune channels:0.3)")
        return None
    if isinstance(prune, str):
        extra = {k: v for k, v in (("scope", scope), ("criterion", criterion), ("round_to", round_to)) if v is not None}
        return PruneOptions.parse(prune, reconstruct=bool(reconstruct), **extra)
    if not isinstance(prune, (PruneOptions, Mapping)):
        raise OptionError(f"prune must be a spec such as 'channels:0.3', a PruneOptions or a dict of its fields, got "
                          f"{type(prune).__name__}")
    if flat:
        given = ", ".join(f"{f[2:].replace('-', '_')}={v!r}" for f, v in flat)
        raise OptionError(f"give scope, criterion, round_to and reconstruct inside PruneOptions (or the prune dict), "
                          f"not beside it ({given})")
    return build(PruneOptions, prune)


def prune_step(model: onnx.ModelProto, options: PruneOptions, calibration: str | os.PathLike | None
               ) -> tuple[onnx.ModelProto, dict[str, Any], dict[str, Any]]:
    """Prune `model`; returns the pruned model, its provenance step, and its report."""
    samples = load_samples(calibration, model_inputs(model), scalars=scalar_inputs(model)) \
        if calibration is not None else None
    result = prune_model(model, options, samples.feeds if samples is not None else None)
    step = {"name": "prune", "options": {**options.to_dict(), "calibration_samples": len(samples or [])}}
    return result.model, step, result.report
