"""Choosing the units to remove: per layer or across the network, never emptying a tensor.

A *layer* here is the set of units on one Conv/Gemm/MatMul output; layers that share their units (the
convs writing one residual stream, a depthwise conv and its producer) count once. Blocked units are never
chosen; `ratio` applies to each layer's prunable units (scope `layer`) or to all of them (scope `global`,
scores divided by their layer's mean so that layers of different scales compare).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .analysis import Dependencies
from .options import PruneOptions


@dataclass
class Group:
    """Layers sharing one set of units."""

    layers: list[str]
    units: list[int]
    prunable: list[int] = field(default_factory=list)


def groups(deps: Dependencies) -> list[Group]:
    found: dict[bytes, Group] = {}
    owner: set[int] = set()
    for layer in deps.layers:
        units = deps.units(layer.labels)
        key = units.tobytes()
        if key in found:
            found[key].layers.append(layer.node)
            continue
        g = Group([layer.node], units.tolist())
        g.prunable = [u for u in g.units if u not in deps.blocked and u not in owner]
        owner.update(g.prunable)
        found[key] = g
    return list(found.values())


def choose(deps: Dependencies, scores: dict[int, float], options: PruneOptions) -> set[int]:
    gs = groups(deps)
    removed: set[int] = set()
    if options.scope == "layer":
        for g in gs:
            k = min(int(round(options.ratio * len(g.prunable))), len(g.units) - 1)
            removed.update(sorted(g.prunable, key=lambda u: (scores.get(u, 0.0), u))[:max(k, 0)])
    else:
        removed = _global(gs, scores, options)
    if options.round_to > 1:
        for g in gs:
            _round(g, removed, scores, options.round_to)
    _keep_every_tensor(deps, removed, scores)
    return removed


def _round(g: Group, removed: set[int], scores: dict[int, float], multiple: int) -> None:
    """Keep a multiple of `multiple` units in `g` (the nearest one the blocked units allow), giving back
    the best removed units or removing the worst kept prunable ones."""
    n = len(g.units)
    gone = sorted((u for u in g.prunable if u in removed), key=lambda u: -scores.get(u, 0.0))
    floor = n - len(g.prunable)  # blocked units always stay
    target = max(multiple * round((n - len(gone)) / multiple), multiple)
    while target < floor:
        target += multiple
    target = min(target, n)
    keep_prunable = sorted((u for u in g.prunable if u not in removed), key=lambda u: scores.get(u, 0.0))
    while n - len(gone) < target and gone:
        removed.discard(gone.pop(0))
    while n - len(gone) > target and keep_prunable:
        u = keep_prunable.pop(0)
        removed.add(u)
        gone.append(u)


def _global(gs: list[Group], scores: dict[int, float], options: PruneOptions) -> set[int]:
    ranked = []
    for i, g in enumerate(gs):
        mean = float(np.mean([scores.get(u, 0.0) for u in g.prunable])) if g.prunable else 0.0
        for u in g.prunable:
            ranked.append((scores.get(u, 0.0) / mean if mean > 0 else 0.0, u, i))
    target = int(round(options.ratio * len(ranked)))
    taken = [0] * len(gs)
    removed: set[int] = set()
    for _, u, i in sorted(ranked):
        if len(removed) >= target:
            break
        cap = min(int(options.max_layer_ratio * len(gs[i].units)), len(gs[i].units) - 1)
        if taken[i] < cap:
            taken[i] += 1
            removed.add(u)
    return removed


def _keep_every_tensor(deps: Dependencies, removed: set[int], scores: dict[int, float]) -> None:
    """A tensor that would lose every channel (a Split segment, a Concat input) gets its best unit back."""
    changed = True
    while changed:
        changed = False
        keep = deps.keep_fn(removed)
        for track in deps.tracks.values():
            if track.size and not keep(track.labels).any():
                best = max(deps.units(track.labels).tolist(), key=lambda u: scores.get(u, 0.0))
                removed.discard(best)
                changed = True
                break
