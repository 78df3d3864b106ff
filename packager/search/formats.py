"""The budget search's int8 format: chosen by measurement as a plain int8-static packaging chooses it
(quantize.recipes), on the search's most aggressive recipe, and held to the budget's cosine and agreement."""

from __future__ import annotations

import dataclasses
from typing import Any

import onnx

from edgepack.runtime.profile import Profile

from ..fidelity.kinds import OutputKind
from ..quantize.options import QuantizeOptions
from ..quantize.recipes import CHOSEN_BY, MIN_AGREEMENT, MIN_COSINE, Choice, Tolerance, choose, host_runs
from ..progress import Progress
from .bench import widest
from .budget import Budget


def choose_for_search(model: onnx.ModelProto, opts: QuantizeOptions, widen: bool, budget: Budget, profile: Profile,
                      explicit: dict[str, Any], kinds: dict[str, OutputKind] | None, folder: str,
                      progress: bool | None = None) -> tuple[QuantizeOptions, Choice | None, str | None]:
    """For a budget search: (the options with int8-static's format chosen as choose() does, measured on the
    search's widest recipe and held to the budget's cosine and agreement; the choice, whose calibration the
    search reuses; None when the search must hold quantized recipes to p50 <= fp32 here, else why not)."""
    speed = None
    if opts.active:
        speed = ("recipe profile asked for" if opts.recipe == "profile" else "--allow-slower given"
                 if budget.allow_slower else host_runs(profile))
    if opts.mode != "int8-static":
        return opts, None, speed
    given = budget.min_cosine is not None or budget.min_agreement is not None
    tolerance = Tolerance(MIN_COSINE if budget.min_cosine is None else budget.min_cosine,
                          MIN_AGREEMENT if budget.min_agreement is None else budget.min_agreement,
                          "the budget's --min-cosine and --min-agreement" if given else "default tolerance")
    with Progress("calibrating", 0, progress) as bar:
        choice = choose(model, widest(opts, model, widen), profile, explicit, tolerance, kinds, folder,
                        lambda done, total: bar.update(done, total=total))
    return dataclasses.replace(opts, **{k: getattr(choice.opts, k) for k in CHOSEN_BY}), choice, speed
