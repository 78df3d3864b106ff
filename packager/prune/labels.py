"""Channel labels: the bookkeeping behind dependency groups.

Every position along a tracked tensor's channel axis carries an integer *label*. A Conv, Gemm or MatMul
gives each of its output channels a fresh label; an op that only moves or combines channels hands labels on
(a Relu passes them through, a Flatten repeats each one over the spatial positions it spreads to, a Concat
lays them end to end). An op that forces two positions to live or die together *unites* their labels, as
a residual Add does for channel k of its two inputs. The united classes are the *units* that pruning removes
whole; the set of everything a unit touches is Torch-Pruning's *group*.

Worked example (a residual block):

    a = Conv_1(x)        labels a: [0 1 2 3]
    b = Conv_2(Relu(a))  labels b: [4 5 6 7]
    y = Add(a, b)        unites 0-4, 1-5, 2-6, 3-7: four units, each one channel of Conv_1 *and* Conv_2

Removing the unit {1, 5} removes filter 1 of Conv_1 and of Conv_2, channel 1 of the Add, and input slice 1
of every layer that reads `a` or `y`.

A label that reaches something the analysis cannot rewrite (a graph output, an op without a rule) is
*blocked*, with the reason, and its whole unit is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """The tracked channel axis of one tensor: `labels[i]` labels position i along `axis` (of `rank`)."""

    axis: int
    rank: int
    labels: np.ndarray

    @property
    def size(self) -> int:
        return len(self.labels)


class Labels:
    """A union-find over channel labels, with the reason each blocked label was blocked."""

    def __init__(self) -> None:
        self._parent = np.zeros(0, np.int64)
        self._blocked: list[tuple[np.ndarray, str]] = []

    def __len__(self) -> int:
        return len(self._parent)

    def new(self, n: int) -> np.ndarray:
        start = len(self._parent)
        self._parent = np.concatenate([self._parent, np.arange(start, start + n, dtype=np.int64)])
        return np.arange(start, start + n, dtype=np.int64)

    def roots(self, labels: np.ndarray) -> np.ndarray:
        r = np.asarray(labels, np.int64)
        while True:
            p = self._parent[r]
            if np.array_equal(p, r):
                return r
            r = p

    def _root(self, x: int) -> int:
        while self._parent[x] != x:
            self._parent[x] = self._parent[self._parent[x]]
            x = int(self._parent[x])
        return x

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Unite a[i] with b[i] for every i (equal lengths)."""
        if len(a) != len(b):
            raise ValueError(f"cannot unite {len(a)} labels with {len(b)}")
        for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
            rx, ry = self._root(x), self._root(y)
            if rx != ry:
                self._parent[max(rx, ry)] = min(rx, ry)

    def union_all(self, labels: np.ndarray) -> None:
        """Unite every label in `labels` into one unit."""
        if len(labels) > 1:
            self.union(labels[:1].repeat(len(labels) - 1), labels[1:])

    def block(self, labels: np.ndarray, reason: str) -> None:
        if len(labels):
            self._blocked.append((np.asarray(labels, np.int64), reason))

    def blocked_units(self) -> dict[int, str]:
        """{unit root: the first reason one of its labels was blocked}."""
        out: dict[int, str] = {}
        for labels, reason in self._blocked:
            for r in np.unique(self.roots(labels)).tolist():
                out.setdefault(r, reason)
        return out
