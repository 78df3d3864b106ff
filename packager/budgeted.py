"""package() with a budget: the search (edgepack.packager.search) runs the prune and quantize steps many ways
and returns the trial it chose, built; this applies that trial's steps to the job, checks it (the quantize
step's checks, the fidelity step) and writes it only if it still meets the budget once packaged.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import BudgetNotMet

from . import report_keys as keys
from .bundle import PackageResult
from .pipeline import Job, StepResult, fidelity_step, finish, quantized
from .progress import phase
from .quantize.run import checked
from .writer import write_atomic

if TYPE_CHECKING:
    from .search import Budget, Chosen


RETRIES = 2   # searches run again when the bundle written misses --max-bytes by the final report's extra bytes


def package_to_budget(job: Job, budget: Budget, widen: bool, output: str | os.PathLike, folder: str
                      ) -> PackageResult:
    """Search for the recipe (search.run), check the trial it chose, and write it only if it meets the budget;
    `job` has run its import step, `widen`: the caller named no op types. The size checked is the final
    bundle's: when only the report written after the search (its full record) takes it over --max-bytes, the
    search runs again with those bytes reserved in every trial's size, so that it picks a smaller recipe."""
    from .quantize.samples import load_for
    from .search.budget import describe_miss
    from .search.formats import choose_for_search

    assert job.quantize is not None and job.eval_data is not None
    samples = load_for(job.source.model, os.fspath(job.eval_data), "eval data")
    qopts, choice, speed = choose_for_search(job.named_source, job.quantize, widen, budget, job.profile,
                                             job.explicit, job.kinds, folder, job.progress)
    extra = {} if choice is None else {"recipe": choice.record, **({"candidates": choice.candidates}
                                                                   if choice.candidates else {})}
    reserve = 0
    for attempt in range(RETRIES + 1):
        staged = os.path.join(folder, f"final-{attempt}.edgepack")
        tried = _fork(job)
        result, chosen, misses = _attempt(tried, budget, widen, output, folder, staged, samples, qopts, choice,
                                          speed, extra, reserve)
        if not misses:
            break
        estimated = chosen.trial.figures["bytes"] - reserve   # the trial's own bundle, reserve apart
        if set(misses) != {"max_bytes"} or attempt == RETRIES or result.bundle_bytes <= estimated:
            raise BudgetNotMet(f"the chosen recipe (trial {chosen.trial.index}) misses the budget once packaged: "
                               f"{'; '.join(describe_miss(k, v) for k, v in misses.items())}; nothing was written "
                               f"to {os.fspath(output)}", chosen.trial.record(), misses, chosen.report["trials"])
        gap = result.bundle_bytes - estimated
        reserve = max(reserve, gap + gap // 4 + 64)   # a margin: a longer search has a longer record
    write_atomic(output, _chunks(staged))
    result.report = {**result.report, keys.SEARCH_TIMING: {**chosen.timing, "bundle_bytes": result.bundle_bytes}}
    return result


def _fork(job: Job) -> Job:
    """A copy of `job` that one attempt's steps can apply to, leaving `job` as it was."""
    forked = copy.copy(job)
    forked.steps, forked.report, forked.timings = list(job.steps), dict(job.report), dict(job.timings)
    return forked


def _attempt(job: Job, budget: Budget, widen: bool, output: str | os.PathLike, folder: str, staged: str,
             samples: Any, qopts: Any, choice: Any, speed: str | None, extra: dict[str, Any], reserve: int
             ) -> tuple[PackageResult, Chosen, dict[str, Any]]:
    """One search, its choice applied to `job` and written to `staged`; the budgets the written bundle misses."""
    from .search import Inputs, search
    from .search.budget import FIDELITY
    from .search.evaluate import summarize

    calibration = os.fspath(job.calibration) if job.calibration is not None else None
    inputs = Inputs(job.named_source, budget, qopts if qopts.active else None, widen, job.prune, calibration,
                    samples, job.profile, job, job.progress, job.kinds, choice.prepared if choice else None, speed,
                    extra, reserve)
    try:
        chosen = search(inputs, folder)
    except BudgetNotMet as e:
        raise BudgetNotMet(f"{e}; nothing was written to {os.fspath(output)}", e.best, e.misses, e.trials) from None
    job.apply(StepResult(chosen.bench.model, {"name": "search", "options": {**budget.record(),
                                                                            "chosen_trial": chosen.trial.index}},
                         {keys.SEARCH: chosen.report}))
    job.apply(chosen.bench.prune or StepResult(chosen.bench.model))
    job.apply(_quantize_chosen(chosen, job))
    if keys.QUANTIZATION in job.report:
        job.report[keys.QUANTIZATION].update(extra)
    job.run(fidelity_step)
    result = finish(job, staged, shown_as=output)
    final = {**summarize(result.report[keys.FIDELITY]["outputs"]), "bytes": result.bundle_bytes}
    return result, chosen, budget.misses(final, only=(*FIDELITY, "max_bytes"))


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
