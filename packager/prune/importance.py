"""How much each unit matters, by the criterion the user chose.

l1 / l2: the norm of the unit's filters and neurons (every layer the unit spans, summed; a residual unit
    counts the matching filter of each conv that writes the residual stream).
activation: for every layer that reads the unit, the L2 norm of the weights reading each of its positions
    times the mean magnitude of the activation at that position on the calibration data, summed: an
    estimate of how much of the readers' output the unit carries. A unit nothing reads scores 0.
"""

from __future__ import annotations

import numpy as np

from .analysis import Dependencies


def _per_position(w: np.ndarray, axis: int, order: int) -> np.ndarray:
    other = tuple(i for i in range(w.ndim) if i != axis)
    w = np.abs(w.astype(np.float64))
    return w.sum(axis=other) if order == 1 else (w * w).sum(axis=other)


def _accumulate(deps: Dependencies, labels: np.ndarray, values: np.ndarray, into: dict[int, float]) -> None:
    roots = deps.labels.roots(labels)
    uniq, inverse = np.unique(roots, return_inverse=True)
    sums = np.zeros(len(uniq))
    np.add.at(sums, inverse, values)
    for r, v in zip(uniq.tolist(), sums.tolist()):
        into[r] = into.get(r, 0.0) + v


def scores(deps: Dependencies, criterion: str, means: dict[str, np.ndarray] | None = None) -> dict[int, float]:
    """{unit root: importance} for every unit a layer creates."""
    out: dict[int, float] = {}
    for layer in deps.layers:
        _accumulate(deps, layer.labels, np.zeros(len(layer.labels)), out)
    if criterion in ("l1", "l2"):
        order = 1 if criterion == "l1" else 2
        seen: set[tuple[str, int]] = set()
        for s in deps.slices:
            w = deps.view.const(s.param)
            if s.role != "out" or (s.param, s.axis) in seen or w is None or w.ndim < 2:
                continue
            seen.add((s.param, s.axis))
            _accumulate(deps, s.labels, _per_position(w, s.axis, order), out)
        return {r: (np.sqrt(v) if order == 2 else v) for r, v in out.items()}
    if means is None:
        raise ValueError("the activation criterion needs activation means")
    for reader in deps.readers:
        w = deps.view.const(reader.weight)
        assert w is not None  # a reader's weight is a constant: the rules only record readers of constants
        norms = np.sqrt(_per_position(w, reader.weight_axis, 2))
        _accumulate(deps, reader.track.labels, norms * means[reader.input], out)
    return out
