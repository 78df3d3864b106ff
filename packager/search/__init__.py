"""Packaging to a budget: accuracy, size, memory and latency (docs/BUDGET.md).

    budget = make_budget({"max_accuracy_drop": 1.0, "max_bytes": 300_000})
    chosen = search(Inputs(source, budget, quantize_options, ...), folder)   # package() does this
    chosen.trial, chosen.model, chosen.quantize, chosen.report     # the chosen trial, built

run.py is the search, bench.py one (pruned) model prepared and calibrated once, sensitivity.py the per-node
ranking, evaluate.py the fidelity of a candidate against the original, costs.py memory and latency in a
fresh process, budget.py the typed budget, trial.py one recipe's record.
"""

from .budget import Budget, check_usable, make_budget
from .run import Chosen, Inputs, describe, search

__all__ = ["Budget", "Chosen", "Inputs", "check_usable", "describe", "make_budget", "search"]
