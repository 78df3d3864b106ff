"""What a pruning rule sees and records (`Context`), and the records it leaves: the layers whose channels
pruning chooses among, the readers of those channels, the initializer slices and the edits that follow them.
analysis.py runs the rules (rules/) over a graph with one Context and turns it into a `Dependencies`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import numpy as np
import onnx

from .graph import GraphView, subgraph_reads
from .labels import Labels, Track

Keep = Callable[[np.ndarray], np.ndarray]  # labels -> bool mask of the positions that stay


@dataclass(frozen=True)
class ParamSlice:
    """Initializer `param` loses position i along `axis` when the unit of `labels[i]` is removed.

    role: "out" (a layer's filters or neurons), "in" (a layer's input slices), "param" (per-channel values:
    biases, BatchNorm statistics, broadcast constants).
    """

    param: str
    axis: int
    labels: np.ndarray
    role: str
    node: str


@dataclass(frozen=True)
class Layer:
    """A node whose weights create `labels` on `output` (channel axis `axis`)."""

    node: str
    op: str
    output: str
    axis: int
    labels: np.ndarray
    weight: str


@dataclass(frozen=True)
class Reader:
    """A node that reads the tracked channels of `input` through the weight `weight` (axis `weight_axis`)."""

    node: str
    op: str
    input: str
    track: Track
    weight: str
    weight_axis: int


class Edit:
    """A change to an attribute or a shape constant that follows the kept positions."""

    node: str

    def apply(self, graph: onnx.GraphProto, keep: Keep) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Context:
    """What a rule sees and records. Rules run once per node, in graph (topological) order."""

    view: GraphView
    labels: Labels = field(default_factory=Labels)
    tracks: dict[str, Track] = field(default_factory=dict)
    slices: list[ParamSlice] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    readers: list[Reader] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    claims: set[tuple[str, str]] = field(default_factory=set)

    # --- reading the graph ---
    def const(self, name: str) -> np.ndarray | None:
        return self.view.const(name) if name else None

    def shape(self, name: str) -> Any:
        return self.view.shape(name)

    def rank(self, name: str) -> int | None:
        return self.view.rank(name)

    def track(self, name: str) -> Track | None:
        return self.tracks.get(name)

    def set_track(self, name: str, track: Track) -> None:
        self.tracks[name] = track

    # --- labels ---
    def new(self, n: int) -> np.ndarray:
        return self.labels.new(n)

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        self.labels.union(a, b)

    def block(self, labels: np.ndarray, reason: str) -> None:
        self.labels.block(labels, reason)

    def block_inputs(self, node: onnx.NodeProto, reason: str) -> None:
        """Leave alone every tracked tensor `node` reads (directly or inside its subgraphs)."""
        for name in [*node.input, *subgraph_reads(node)]:
            t = self.track(name)
            if t is not None:
                self.block(t.labels, f"{name!r} {reason}")

    # --- what removal rewrites ---
    def slice(self, node: onnx.NodeProto, param: str, axis: int, labels: np.ndarray, role: str = "param") -> None:
        self.slices.append(ParamSlice(param, axis, np.asarray(labels), role, node.name))
        self.claims.add((node.name, param))

    def layer(self, node: onnx.NodeProto, output: str, axis: int, rank: int, weight: str, weight_axis: int,
              labels: np.ndarray) -> None:
        """Record a layer creating `labels` on `output`, whose filters lie along `weight_axis`."""
        self.layers.append(Layer(node.name, node.op_type, output, axis, labels, weight))
        self.slice(node, weight, weight_axis, labels, "out")
        self.set_track(output, Track(axis, rank, labels))

    def reader(self, node: onnx.NodeProto, name: str, track: Track, weight: str, weight_axis: int) -> None:
        self.readers.append(Reader(node.name, node.op_type, name, track, weight, weight_axis))
        self.slice(node, weight, weight_axis, track.labels, "in")

    def edit(self, edit: Edit) -> None:
        self.edits.append(edit)
