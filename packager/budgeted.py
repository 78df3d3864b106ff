"""package() with a budget: the search (edgepack.packager.search) runs the prune and quantize steps many ways
and returns the trial it chose, built; this applies that trial's steps to the job, checks it (the quantize
step's checks, the fidelity step) and writes it only if it still meets the budget once packaged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import BudgetNotMet

from . import report_keys as keys
from .bundle import PackageResult
from .pipeline import Job, StepResult, fidelity_step, finish, quantized
from .progress import phase
from .quantize.run import checked
from .writer import write_atomic

if TYPE_CHECKING:
    from .search import Budget, Chosen


def package_to_budget(job: Job, budget: Budget, widen: bool, output: str | os.PathLike, folder: str
                      ) -> PackageResult:
    """Search for the recipe (search.run), check the trial it chose, and write it only if it meets the budget;
    `job` has run its import step, `widen`: the caller named no op types."""
    from .quantize.samples import load_for
    from .search import Inputs, search
    from .search.budget import FIDELITY, describe_miss
    from .search.evaluate import summarize
    from .search.formats import choose_for_search

    assert job.quantize is not None and job.eval_data is not None
    samples = load_for(job.source.model, os.fspath(job.eval_data), "eval data")
    qopts, choice, speed = choose_for_search(job.named_source, job.quantize, widen, budget, job.profile,
                                             job.explicit, job.kinds, folder, job.progress)
    calibration = os.fspath(job.calibration) if job.calibration is not None else None
    inputs = Inputs(job.named_source, budget, qopts if qopts.active else None, widen, job.prune, calibration,
                    samples, job.profile, job, job.progress, job.kinds, choice.prepared if choice else None, speed)
    try:
        chosen = search(inputs, folder)
    except BudgetNotMet as e:
        raise BudgetNotMet(f"{e}; nothing was written to {os.fspath(output)}", e.best, e.misses, e.trials) from None
    job.apply(StepResult(chosen.bench.model, {"name": "search", "options": {**budget.record(),
                                                                            "chosen_trial": chosen.trial.index}},
                         {keys.SEARCH: chosen.report}))
    job.apply(chosen.bench.prune or StepResult(chosen.bench.model))
    job.apply(_quantize_chosen(chosen, job))
    if choice is not None and keys.QUANTIZATION in job.report:
        job.report[keys.QUANTIZATION].update(recipe=choice.record, **({"candidates": choice.candidates}
                                                                      if choice.candidates else {}))
    job.run(fidelity_step)
    staged = os.path.join(folder, "final.edgepack")
    result = finish(job, staged, shown_as=output)
    final = {**summarize(result.report[keys.FIDELITY]["outputs"]), "bytes": result.bundle_bytes}
    misses = budget.misses(final, only=(*FIDELITY, "max_bytes"))
    if misses:  # the trial met them: only the final report's extra bytes or a lowered optimization level can
        raise BudgetNotMet(f"the chosen recipe (trial {chosen.trial.index}) misses the budget once packaged: "
                           f"{'; '.join(describe_miss(k, v) for k, v in misses.items())}; nothing was written to "
                           f"{os.fspath(output)}", chosen.trial.record(), misses, chosen.report["trials"])
    write_atomic(output, _chunks(staged))
    result.report = {**result.report, keys.SEARCH_TIMING: chosen.timing}
    return result


def _quantize_chosen(chosen: Chosen, job: Job) -> StepResult:
    """The quantize step of the chosen trial: its model as the search built it, checked (not quantized again)."""
    if chosen.quantize is None or chosen.built is None or chosen.bench.prepared is None:
        return StepResult(chosen.model)
    with phase(f"checking the quantized model ({chosen.quantize.mode})"):
        return quantized(checked(chosen.bench.model, chosen.quantize, job.profile, chosen.bench.prepared,
                                 chosen.built))


def _chunks(path: str, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


__all__ = ["package_to_budget"]
