"""The budget a packaged model must meet: typed, checked before any work starts.

Fidelity budgets are measured on the `--eval` samples against the original model: accuracy lost against the
labels (points), top-1 agreement with the original's predictions (class outputs only), cosine similarity of
the outputs: --min-cosine holds for the worst sample (outputs of fewer than 8 values per sample: the cosine
over all samples together), --min-mean-cosine for the mean over samples. With several outputs, the worst
output counts. Size is the bundle file's bytes; memory and latency are
measured on this machine, in a fresh process that loads the bundle and runs it (peak RSS, median latency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from edgepack.runtime.errors import OptionError

from ..options import Options, build

# flag, unit and direction of each budget, by field name
LIMITS: dict[str, tuple[str, str, str]] = {
    "max_accuracy_drop": ("--max-accuracy-drop", "pt", "max"),
    "min_agreement": ("--min-agreement", "", "min"),
    "min_cosine": ("--min-cosine", "", "min"),
    "min_mean_cosine": ("--min-mean-cosine", "", "min"),
    "max_bytes": ("--max-bytes", "bytes", "max"),
    "max_memory_mb": ("--max-memory-mb", "MB", "max"),
    "max_latency_ms": ("--max-latency-ms", "ms", "max"),
}
FIDELITY = ("max_accuracy_drop", "min_agreement", "min_cosine", "min_mean_cosine")
MEASURED = ("max_memory_mb", "max_latency_ms")
# the figure of a trial each budget is compared with
FIGURE = {"max_accuracy_drop": "accuracy_drop", "min_agreement": "agreement", "min_cosine": "cosine",
          "min_mean_cosine": "cosine_mean", "max_bytes": "bytes", "max_memory_mb": "peak_mb",
          "max_latency_ms": "p50_ms"}
# how messages name each figure
DISPLAY = {"accuracy_drop": "accuracy drop", "agreement": "top-1 agreement", "cosine": "worst-sample cosine",
           "cosine_mean": "mean cosine",
           "bytes": "bundle", "peak_mb": "peak memory", "p50_ms": "median latency"}


@dataclass(frozen=True)
class Budget(Options):
    """What the packaged model may lose and cost; None: no limit. max_trials bounds the search's effort."""

    max_accuracy_drop: float | None = None   # points of accuracy lost against the eval labels, e.g. 1.0
    min_agreement: float | None = None       # top-1 agreement with the original, a fraction, e.g. 0.99
    min_cosine: float | None = None          # cosine similarity with the original's outputs, worst sample
    min_mean_cosine: float | None = None     # the same, mean over samples
    max_bytes: int | None = None             # the bundle file's size
    max_memory_mb: float | None = None       # peak RSS of a fresh process loading and running the bundle
    max_latency_ms: float | None = None      # median latency of one run in that process
    max_trials: int = 24                        # recipes tried at most (per-node sensitivity runs not counted)
    allow_slower: bool = False                  # on a host that runs the target's kernels, a quantized recipe
    #                                             must run at most as slow as fp32 (p50) unless this is True

    WHAT: ClassVar[str] = "budget"
    SPELLING: ClassVar[dict[str, str]] = {name: flag for name, (flag, _, _) in LIMITS.items()}
    ACCEPTS: ClassVar[dict[str, str]] = {"max_bytes": "a whole number of bytes",
                                         "max_trials": "a positive whole number"}

    def _check(self) -> None:
        _range("--max-accuracy-drop", self.max_accuracy_drop, 0, 100, "points of accuracy, e.g. 1.0")
        _range("--min-agreement", self.min_agreement, 0, 1, "a fraction, e.g. 0.99 for 99%")
        _range("--min-cosine", self.min_cosine, -1, 1, "a cosine similarity, e.g. 0.99")
        _range("--min-mean-cosine", self.min_mean_cosine, -1, 1, "a cosine similarity, e.g. 0.99")
        for name in ("max_bytes", "max_memory_mb", "max_latency_ms"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise self.refuse(name, "positive")
        if self.max_trials < 1:
            raise self.refuse("max_trials")

    @property
    def active(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMITS)

    @property
    def limits(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in LIMITS if getattr(self, name) is not None}

    def misses(self, figures: dict[str, Any], only: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
        """{budget: {"value", "limit"}} for each budget (of `only`, default all) that `figures` miss; a budget
        whose figure was not measured is not a miss."""
        out = {}
        for name, limit in self.limits.items():
            value = figures.get(FIGURE[name])
            if (only is not None and name not in only) or value is None:
                continue
            over = value > limit if LIMITS[name][2] == "max" else value < limit
            if over:
                out[name] = {"value": value, "limit": limit}
        return out

    def record(self) -> dict[str, Any]:
        return {**self.limits, "max_trials": self.max_trials, **({"allow_slower": True} if self.allow_slower else {})}


def _range(flag: str, value: float | None, low: float, high: float, what: str) -> None:
    if value is not None and not low <= value <= high:
        raise OptionError(f"{flag} must be between {low} and {high} ({what}), got {value!r}")


def make_budget(budget: Budget | Mapping[str, Any] | None) -> Budget:
    """A Budget from a Budget, a dict of its fields (unknown keys refused) or None (no budget)."""
    return build(Budget, budget)


def check_usable(budget: Budget, eval_data: Any) -> None:
    """Refuse a budget the search cannot measure: no eval data, or no fidelity budget to hold it to."""
    if not budget.active:
        return
    flags = ", ".join(LIMITS[name][0] for name in budget.limits)
    if eval_data is None:
        raise OptionError(f"{flags} needs --eval DATA: held-out samples (an .npz keyed by input name, with a "
                          "'labels' array for --max-accuracy-drop) that each recipe the search tries is measured on")
    if not any(name in budget.limits for name in FIDELITY):
        raise OptionError(f"{flags} needs a fidelity budget too, or the search would keep the smallest model however "
                          "wrong it is: add --max-accuracy-drop POINTS (with labels), --min-agreement FRACTION or "
                          "--min-cosine VALUE")


def resolution(budget: Budget, samples: int, predictions: int | None) -> list[str]:
    """Why the eval data is too small to hold the fidelity budgets it is asked to: one changed prediction
    moves the figure by more than the budget allows."""
    notes = []
    if budget.max_accuracy_drop is not None and samples and 100 / samples > budget.max_accuracy_drop:
        notes.append(f"the eval data is too small for --max-accuracy-drop {budget.max_accuracy_drop:g}: one of its "
                     f"{samples} samples is {100 / samples:.2f} pt, so one changed prediction misses the budget; "
                     f"give at least {int(100 / budget.max_accuracy_drop) + 1} samples")
    if budget.min_agreement is not None and predictions and 1 - budget.min_agreement < 1 / predictions:
        notes.append(f"the eval data is too small for --min-agreement {budget.min_agreement:g}: one of its "
                     f"{predictions} predictions is {100 / predictions:.2f}%, so one changed prediction misses it")
    return notes


def describe_miss(name: str, miss: dict[str, Any]) -> str:
    """`accuracy drop 1.80 pt > 1.0 pt (by 0.80)`, for error messages and reports."""
    flag, unit, direction = LIMITS[name]
    value, limit = miss["value"], miss["limit"]
    fmt = (lambda v: f"{v:,.0f}") if name == "max_bytes" else (lambda v: f"{v:.4g}")
    unit = f" {unit}" if unit else ""
    sign = ">" if direction == "max" else "<"
    return f"{DISPLAY[FIGURE[name]]} {fmt(value)}{unit} {sign} {flag} {fmt(limit)}{unit} " \
           f"(by {fmt(abs(value - limit))}{unit})"
