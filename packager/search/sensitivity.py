"""Per-node sensitivity: how far the outputs move when only that node is quantized.

Two ways, by the model's size. A small model (at most EXACT_NODES candidates and EXACT_BYTES of float
weights) is measured exactly, as below: it costs seconds there. A larger one is ranked by probe.py's cheap
signal (each node's own error under fake quantization, one pass for all nodes), since one quantization and
one evaluation per node took more than 15 minutes on a 90 MB transformer.

Each candidate node is quantized alone (every other candidate kept in float), with the activation ranges
calibrated once, and the result runs on the eval samples (at most SAMPLES of them). The error is one minus
the worst output's mean cosine similarity with the original: continuous, so that nodes whose quantization
changes no prediction are still told apart. A node whose quantization fails ranks first (error None, with
the reason). Cost: one quantization and one pass over the samples per candidate.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

from edgepack.runtime.errors import EdgepackError

from ..graphwalk import nodes
from .bench import Bench, build
from .evaluate import Evaluator
from .probe import rank

SAMPLES = 256
# measured even when the first recipe meets the budget (for the report) up to this many candidate nodes;
# above, only when the search needs the ranking
ALWAYS = 64


EXACT_NODES = 64
EXACT_BYTES = 8 << 20


def method(bench: Bench) -> str:
    """"exact" or "probe": how measure() ranks this bench's candidates."""
    return "exact" if len(bench.candidates) <= EXACT_NODES and bench.weight_bytes <= EXACT_BYTES else "probe"


def measure(bench: Bench, evaluator: Evaluator, progress: Callable[[int, int, str], None] | None = None
            ) -> list[dict[str, Any]]:
    """One entry per candidate, most sensitive first: node, op, weight_bytes, error (and, measured exactly,
    agreement and accuracy_drop)."""
    if method(bench) == "probe":
        try:
            return rank(bench, evaluator.samples)
        except Exception:  # a graph the probe cannot copy or run: the exact way, slow but sure
            pass
    return exact(bench, evaluator, progress)


def exact(bench: Bench, evaluator: Evaluator, progress: Callable[[int, int, str], None] | None = None
          ) -> list[dict[str, Any]]:
    """Each candidate quantized alone and evaluated."""
    ops = {n.name: n.op_type for n, _ in nodes(bench.prepared.model)} if bench.prepared else {}
    rows = []
    for i, name in enumerate(bench.candidates):
        if progress:
            progress(i, len(bench.candidates), name)
        row: dict[str, Any] = {"node": name, "op": ops.get(name, "?"), "weight_bytes": bench.node_weights[name]}
        others = tuple(n for n in bench.candidates if n != name)
        try:
            model, _ = build(bench, others)
            figures = evaluator.figures(model, SAMPLES)
        except EdgepackError as e:
            row.update(error=None, failed=str(e)[:300])
        else:
            cosine = figures["cosine"]
            row["error"] = None if cosine is None else float(f"{max(0.0, 1.0 - cosine):.6g}")
            row.update({k: float(f"{figures[k]:.6g}") for k in ("agreement", "accuracy_drop")
                        if figures[k] is not None})
        rows.append(row)
    if progress:
        progress(len(bench.candidates), len(bench.candidates), "")
    position = {name: i for i, name in enumerate(bench.candidates)}
    return sorted(rows, key=lambda r: (_key(r), position[r["node"]]))


def _key(row: dict[str, Any]) -> float:
    """Most sensitive first: failures, then the largest error (agreement lost when no cosine)."""
    if "failed" in row:
        return float("-inf")
    if row.get("error") is not None:
        return -row["error"]
    return -(1.0 - row.get("agreement", 1.0))
