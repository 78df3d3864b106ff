"""The budget search: from the most aggressive recipe, back off until every budget holds.

    1. start    the mode's most aggressive recipe: every op type its quantizer supports, at the pruning ratio
                asked for (if any); built, sized (a real bundle) and measured on the eval samples
    2. rank     when a fidelity budget is missed: each candidate node quantized alone on a small model, a cheap
                one-pass signal (each node's own error under fake quantization) on a larger one (sensitivity.py)
    3. back off keep the k most sensitive nodes in float, k found by bisection over the ranking; then give
                back (quantize again) the nodes with weights among them, heaviest first, while the budget holds
    4. prune    with --prune, when the ratio asked for misses: bisection for the largest ratio below it at which
                a recipe holds the fidelity budgets (the unpruned model if none does); without --prune, when
                --max-bytes is missed: the same bisection for channel pruning up to AUTO_PRUNE_MAX (refit
                by least squares when calibration data is given). Each ratio is searched as in 1-3, starting
                with the pruned model in float: when that misses already, no quantization can help
    5. choose   the smallest bundle that meets the fidelity and size budgets; with --max-memory-mb or
                --max-latency-ms, those are measured in a fresh process on the smallest candidates first,
                and, when all of them miss a latency budget, on the same model in float

Each pruning ratio is a separate model: it is prepared and calibrated once, and every trial at that ratio
reuses its ranges. The sensitivity ranking is measured once, on the first model that needs it, and reused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import onnx

from edgepack.packager.errors import BudgetNotMet
from edgepack.runtime.errors import EdgepackError

from .. import report_keys as keys
from ..bundle import write_bundle
from ..datasets import Samples
from ..layers import layer_sizes
from ..pipeline import Job
from ..progress import Progress
from ..prune.options import PruneOptions
from ..quantize.options import QuantizeOptions
from ..quantize.run import Quantized
from . import costs, probe, sensitivity
from .bench import Bench, all_float, build, make_bench, quantized_fraction, recipe_opts
from .budget import FIDELITY, MEASURED, Budget
from .evaluate import Evaluator, summarize
from .notes import _note, describe, failure
from .speed import SpeedGate, not_slower
from .trial import Trial

PRUNE_STEPS = 4          # bisection steps over the pruning ratio: a resolution of 1/16 of the range
AUTO_PRUNE_MAX = 0.75    # the most channels the search prunes on its own to fit --max-bytes
MEASURE_LIMIT = 3        # candidates measured at most for memory and latency
STEERING = (*FIDELITY, "max_bytes")   # the budgets the search steers by; memory and latency only choose


@dataclass
class Chosen:
    """The trial the search chose, built: package() checks it and writes it without quantizing it again."""

    bench: Bench                          # its (pruned) model, prepared; bench.prune: the prune step's result
    trial: Trial
    quantize: QuantizeOptions | None      # the chosen quantization (None: none)
    model: onnx.ModelProto                # the trial's model, as built and measured
    built: Quantized | None               # what the quantizer did to it (None: float)
    report: dict[str, Any]                # report["search"], deterministic
    timing: dict[str, Any]                # seconds and measurements, kept out of the bundle


@dataclass
class Inputs:
    """What the search works on, as package() resolved it."""

    source: onnx.ModelProto
    budget: Budget
    quantize: QuantizeOptions | None      # resolved, None for "none"
    widen: bool                           # the user named no op types: start from all of them
    prune: PruneOptions | None
    calibration: str | None
    samples: Samples
    profile: Any
    job: Job                              # package()'s job after the import step: trial bundles start from it
    progress: bool | None = None
    kinds: dict[str, Any] | None = None   # output kinds (fidelity.kinds), for the fidelity figures
    prepared: Any = None                  # the unpruned model prepared and calibrated by the recipe choice
    speed: str | None = None              # None: check p50 <= fp32 on this host; else why it is not checked
    extra: dict[str, Any] | None = None   # quantization report entries known before the search (the format
    #                                       choice): in every trial's bundle, as in the final one
    reserve: int = 0                      # bytes added to each trial's bundle for the rest of the final report


class Search:
    def __init__(self, inputs: Inputs, folder: str):
        self.x, self.folder, self.budget = inputs, folder, inputs.budget
        self.trials: list[Trial] = []
        self.built: dict[int, tuple[onnx.ModelProto, Quantized | None]] = {}   # trials that meet the budgets
        self.benches: dict[float, Bench] = {}
        self.ranking: list[dict[str, Any]] | None = None
        self.calibrations = 0
        self.started = time.monotonic()
        self.timing: dict[str, Any] = {}
        self.evaluator = Evaluator(inputs.source, inputs.samples, inputs.profile, folder, inputs.kinds)
        self.notes = self.evaluator.check_budget(self.budget)
        self.gate = SpeedGate(inputs.source, inputs.samples, inputs.profile, folder) \
            if inputs.quantize is not None and inputs.speed is None else None
        self.slower: list[dict[str, Any]] = []
        self.floor: Trial | None = None   # the model in float, when the speed rule turned every recipe down
        self.bar = Progress("searching", inputs.budget.max_trials, inputs.progress)

    # --- the search ---------------------------------------------------------------------------------

    def run(self) -> Chosen:
        with self.bar:
            start = self.x.prune.ratio if self.x.prune else 0.0
            best = self.inner(start, "start")
            first = self.benches.get(start)
            if self.ranking is None and first is not None and first.opts is not None and \
                    len(first.candidates) <= sensitivity.ALWAYS and sensitivity.method(first) == "exact":
                self.order(first)   # for the report: cheap enough on a model of this size
            if self.x.prune is not None and not (best and best.meets):
                self.search_ratio(0.0, start)
                if not any(t.meets for t in self.trials):
                    self.inner(0.0, "prune")
            elif self.budget.max_bytes and best is not None and "max_bytes" in best.misses:
                self.search_ratio(0.0, AUTO_PRUNE_MAX)
            chosen = self.choose()
            self.bar.update(len(self.trials), total=len(self.trials))
        self.timing["seconds"] = time.monotonic() - self.started
        bench = self.benches[chosen.ratio]
        model, built = self.built[chosen.index] if chosen.index in self.built else build(bench, chosen.float_nodes)
        return Chosen(bench, chosen, recipe_opts(bench, chosen.float_nodes), model, built, self.record(chosen),
                      self.timing)

    @property
    def exhausted(self) -> bool:
        return len(self.trials) >= self.budget.max_trials

    def inner(self, ratio: float, stage: str) -> Trial | None:
        """The smallest recipe found at `ratio` that holds the fidelity budgets, or None."""
        bench = self.bench(ratio, stage)
        if bench is None or self.exhausted:
            return None
        first = self.trial(bench, (), stage)
        best = first if first.fits_fidelity else self.back_off(bench)
        if best is not None:
            best = self.give_back(bench, best)
        if not any(t.meets for t in self.trials if t.ratio == ratio):
            self.benches.pop(ratio, None)   # nothing to choose from here: free the model
        return best

    def back_off(self, bench: Bench) -> Trial | None:
        """After the most aggressive recipe missed: the smallest recipe found that holds the fidelity budgets.
        A pruned model, or a mode without per-node control, is first tried in float: when that misses
        already, no quantization can help."""
        if bench.opts is None or self.exhausted:
            return None
        floor = None
        if bench.ratio > 0 or not bench.candidates:
            floor = self.trial(bench, all_float(bench), "float")
            if not floor.fits_fidelity or not bench.candidates:
                return floor if floor.fits_fidelity else None
        return self.back_off_nodes(bench, floor)

    def back_off_nodes(self, bench: Bench, floor: Trial | None) -> Trial | None:
        """Keep the shortest prefix of the sensitivity ranking in float that holds the fidelity budgets;
        `floor`: the all-float trial, when already run (it holds them)."""
        order = self.order(bench)
        lo, hi, best = 0, len(order), None
        while hi - lo > 1 and not self.exhausted:
            mid = (lo + hi) // 2
            t = self.trial(bench, tuple(order[:mid]), "backoff")
            if t.fits_fidelity:
                hi, best = mid, t
            else:
                lo = mid
        if best is None and floor is None and not self.exhausted:
            floor = self.trial(bench, tuple(order), "float")
        return best or (floor if floor is not None and floor.fits_fidelity else None)

    def give_back(self, bench: Bench, best: Trial) -> Trial:
        """Quantize again, heaviest first, the nodes with weights the back-off left in float, while it holds."""
        heavy = sorted((n for n in best.float_nodes if bench.node_weights.get(n, 0) > 0),
                       key=lambda n: -bench.node_weights[n])
        for name in heavy:
            if self.exhausted:
                break
            t = self.trial(bench, tuple(n for n in best.float_nodes if n != name), "give-back")
            if t.fits_fidelity:
                best = t
        return best

    def search_ratio(self, lo: float, hi: float) -> None:
        """Bisection for the largest pruning ratio in (lo, hi) at which a recipe holds the fidelity budgets:
        the more channels pruned, the smaller the bundle, until accuracy goes."""
        for _ in range(PRUNE_STEPS):
            if self.exhausted:
                return
            mid = round((lo + hi) / 2, 4)
            if self.inner(mid, "prune") is not None:
                lo = mid
            else:
                hi = mid

    # --- one trial ----------------------------------------------------------------------------------

    def trial(self, bench: Bench, float_nodes: tuple[str, ...], stage: str) -> Trial:
        opts = recipe_opts(bench, float_nodes)
        t = Trial(len(self.trials), stage, bench.ratio, opts.mode if opts else "none", float_nodes)
        try:
            model, built = build(bench, float_nodes)
            outputs = self.evaluator.outputs(model)
            t.figures = {**summarize(outputs), "quantized_weight_fraction": quantized_fraction(bench, model)}
            t.figures["bytes"] = self.size(bench, model, opts, t, {
                keys.FIDELITY: {"outputs": outputs}, keys.QUANTIZATION: built.summary if built else {}})
        except EdgepackError as e:
            t.error = " ".join(str(e).split())[:300]
        t.misses = self.budget.misses(t.figures, only=STEERING)
        if t.meets and t.error is None:   # a candidate: kept as built, so the one chosen is not quantized again
            self.built[t.index] = (model, built)
        if t.path and not (t.meets and any(n in self.budget.limits for n in MEASURED)):
            os.unlink(t.path)
            t.path = None
        self.trials.append(t)
        self.bar.update(len(self.trials), note=_note(t))
        return t

    def size(self, bench: Bench, model: onnx.ModelProto, opts: QuantizeOptions | None, t: Trial,
             report: dict[str, Any]) -> int:
        """The bytes of the trial's bundle, written with about the report the final bundle would have (its
        fidelity, layers, the format choice, the search's record so far), plus `reserve` for what only the final
        record holds, so that --max-bytes holds for the file written (package_to_budget checks that file)."""
        steps = [bench.prune.provenance] if bench.prune and bench.prune.provenance else []
        if opts is not None:
            steps.append({"name": "quantize", "options": opts.record()})
        if report.get(keys.QUANTIZATION):
            report[keys.QUANTIZATION] = {**report[keys.QUANTIZATION], **(self.x.extra or {})}
        report = {**report, keys.LAYERS: layer_sizes(self.x.source, model),
                  keys.SEARCH: {"trials": [x.record() for x in self.trials] + [t.record()],
                                "sensitivity": self.ranking or []}}
        if bench.prune:
            report.update(bench.prune.report)
        t.path = os.path.join(self.folder, f"trial-{t.index}.edgepack")
        job, enc = self.x.job, self.x.job.encoding
        return write_bundle(job.source, model, t.path, job.profile, [*job.steps, *steps], {**job.report, **report},
                            enc.level, enc.frame_bytes, enc.threads).bundle_bytes + self.x.reserve

    def bench(self, ratio: float, stage: str) -> Bench | None:
        if ratio in self.benches:
            return self.benches[ratio]
        bar = Progress(f"calibrating{f' (pruned {ratio:g})' if ratio else ''}", 0, self.x.progress)
        prune = self.x.prune or PruneOptions(ratio=AUTO_PRUNE_MAX, reconstruct=self.x.calibration is not None)
        try:
            with bar:
                bench = make_bench(self.x.source, ratio, prune, self.x.calibration, self.x.quantize, self.x.widen,
                                   self.folder, lambda done, total: bar.update(done, total=total),
                                   self.x.prepared if ratio == 0 else None)
        except EdgepackError as e:
            self.trials.append(Trial(len(self.trials), stage, ratio, "none", (), error=" ".join(str(e).split())[:300]))
            return None
        self.calibrations += bench.prepared is not None and bench.prepared.ranges is not None
        self.benches[ratio] = bench
        return bench

    def order(self, bench: Bench) -> list[str]:
        """The bench's candidates, most sensitive first (ranked once, on the first bench that needs it)."""
        if self.ranking is None:
            t0 = time.monotonic()
            with Progress("measuring sensitivity", len(bench.candidates), self.x.progress) as bar:
                self.ranking = sensitivity.measure(bench, self.evaluator,
                                                   lambda i, n, name: bar.update(i, note=name))
            self.timing["sensitivity_seconds"] = time.monotonic() - t0
        ranked = [r["node"] for r in self.ranking if r["node"] in set(bench.candidates)]
        return ranked + [n for n in bench.candidates if n not in set(ranked)]

    # --- the choice ---------------------------------------------------------------------------------

    def choose(self) -> Trial:
        feasible = sorted((t for t in self.trials if t.meets), key=lambda t: (t.figures["bytes"], t.index))
        if self.gate is not None and feasible:
            feasible = self.not_slower(feasible)
        if not any(n in self.budget.limits for n in MEASURED):
            if feasible:
                return feasible[0]
            raise self.failure()
        for t in feasible[:MEASURE_LIMIT]:
            if self.measure(t):
                return t
        floor = self.float_candidate(feasible)
        if floor is not None and self.measure(floor):
            return floor
        raise self.failure()

    def not_slower(self, feasible: list[Trial]) -> list[Trial]:
        """The feasible trials without quantized ones slower than fp32 here; when every one timed is slower,
        the same model in float (speed.py)."""
        def model_of(t: Trial) -> onnx.ModelProto | None:
            bench = self.benches[t.ratio]
            if recipe_opts(bench, t.float_nodes) is None:
                return None
            return self.built[t.index][0] if t.index in self.built else build(bench, t.float_nodes)[0]

        kept, self.slower = not_slower(feasible, self.gate, model_of)  # type: ignore[arg-type]
        self.timing["speed"] = self.gate.figures if self.gate else {}
        if kept or not self.slower:
            return kept
        bench = self.benches[feasible[0].ratio]
        everything = all_float(bench)
        done = [t for t in self.trials if t.ratio == bench.ratio and t.float_nodes == everything]
        self.floor = floor = done[0] if done else self.trial(bench, everything, "float")
        return [floor] if floor.meets else []

    def measure(self, t: Trial) -> bool:
        """Measure the trial's bundle in a fresh process; whether it meets every budget then."""
        # trial() keeps the bundle of a trial that meets the budgets while memory or latency is to be measured
        assert t.path is not None, f"trial {t.index}: its bundle was not kept for measuring"
        t.measured = costs.measure(t.path, costs.feeds_file(self.x.samples, self.folder))
        t.misses.update(self.budget.misses(t.measured, only=MEASURED))
        self.timing.setdefault("measured", {})[t.index] = t.measured
        return t.meets

    def float_candidate(self, feasible: list[Trial]) -> Trial | None:
        """When quantized candidates miss memory or latency: the same model in float, if not tried yet and it
        meets the other budgets (int8 is not faster than float on every CPU)."""
        if not feasible or self.budget.max_latency_ms is None or self.exhausted:
            return None
        bench = self.benches[feasible[0].ratio]
        everything = all_float(bench)
        if bench.opts is None or any(t.ratio == bench.ratio and t.float_nodes == everything for t in self.trials):
            return None
        t = self.trial(bench, everything, "float")
        return t if t.meets else None

    def failure(self) -> BudgetNotMet:
        return failure(self.trials, self.slower, self.floor, time.monotonic() - self.started)

    def record(self, chosen: Trial) -> dict[str, Any]:
        bench = self.benches[chosen.ratio]
        out: dict[str, Any] = {
            "budget": self.budget.record(),
            "mode": self.x.quantize.mode if self.x.quantize else "none",
            "eval": {"data": os.path.basename(os.path.normpath(self.x.samples.source)), "samples": len(self.x.samples)},
            "trials": [t.record() for t in self.trials],
            "chosen": chosen.index,
            "stopped": "trial limit reached" if self.exhausted else "done",
            "speed_rule": "quantized recipes must run at most as slow as fp32 (p50) on this host" if self.gate
            else f"p50 against fp32 not checked: {self.x.speed}",
        }
        if self.notes:
            out["notes"] = self.notes
        if self.x.reserve:
            out["report_reserve_bytes"] = self.x.reserve   # in each trial's bytes: the final report's extra bytes
        if self.slower:
            out["slower_than_fp32"] = [x["trial"] for x in self.slower]
        if bench.opts is not None:
            out["op_types"] = list(bench.opts.op_types or [])
        if bench.prepared is not None and bench.prepared.ranges is not None:
            r = bench.prepared.ranges
            out["calibration"] = {"samples": r.samples, "method": r.method, "models_calibrated": self.calibrations,
                                  "ranges_reused": r.reused}
        if self.x.prune is not None or any(t.ratio for t in self.trials):
            out["prune"] = {"ratio_asked": self.x.prune.ratio if self.x.prune else None,
                            "auto": self.x.prune is None}
        if self.ranking is not None:
            how = sensitivity.method(self.benches.get(0.0) or bench)
            limit = sensitivity.SAMPLES if how == "exact" else probe.SAMPLES
            out["sensitivity"] = {"samples": min(limit, len(self.x.samples)), "method": how, "nodes": self.ranking}
        return out


def search(inputs: Inputs, folder: str) -> Chosen:
    """Run the search and return the trial it chose, built; trial bundles and calibration ranges go into
    `folder`."""
    return Search(inputs, folder).run()


__all__ = ["Chosen", "Inputs", "search", "describe"]
