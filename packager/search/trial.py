"""A trial: one recipe the search built, sized and measured, and what it missed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .budget import FIDELITY, MEASURED

# figures kept in the bundle's report: the same model and options give the same figures
RECORDED = ("bytes", "quantized_weight_fraction", "accuracy", "reference_accuracy", "accuracy_drop", "agreement",
            "cosine", "cosine_mean", "nonfinite")


@dataclass
class Trial:
    index: int
    stage: str                            # start, backoff, give-back, float, prune
    ratio: float                          # channels pruned (0: none)
    mode: str                             # the quantization mode, or "none"
    float_nodes: tuple[str, ...]          # nodes the recipe keeps in float on purpose
    figures: dict[str, Any] = field(default_factory=dict)
    misses: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None              # the recipe could not be built or run
    measured: dict[str, float] = field(default_factory=dict)   # peak_mb, p50_ms: timings, outside the bundle
    path: str | None = None               # its bundle, kept while memory or latency may still be measured

    @property
    def meets(self) -> bool:
        return self.error is None and not self.misses

    @property
    def fits_fidelity(self) -> bool:
        return self.error is None and not any(name in self.misses for name in FIDELITY)

    def record(self) -> dict[str, Any]:
        """What the bundle's report keeps of this trial (deterministic fields only)."""
        out: dict[str, Any] = {"index": self.index, "stage": self.stage, "prune_ratio": self.ratio,
                               "mode": self.mode, "float_nodes": list(self.float_nodes)}
        out.update({k: _round(self.figures[k]) for k in RECORDED if self.figures.get(k) is not None})
        recorded_misses = {k: {"value": _round(v["value"]), "limit": v["limit"]} for k, v in self.misses.items()
                           if k not in MEASURED}
        out["meets"] = self.error is None and not recorded_misses
        if recorded_misses:
            out["misses"] = recorded_misses
        if self.error:
            out["error"] = self.error
        return out


def _round(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def closeness(trial: Trial) -> tuple:
    """Sort key of the trial that came closest to the budget: built and run, fewest budgets missed, smallest
    relative miss, then the smallest bundle."""
    relative = 0.0
    for miss in trial.misses.values():
        value, limit = miss["value"], miss["limit"]
        scale = abs(limit) if limit else 1.0
        relative += abs(value - limit) / scale
    return (trial.error is not None, len(trial.misses), relative, trial.figures.get("bytes") or 0, trial.index)
