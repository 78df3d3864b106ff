"""Typed pruning options, parsed from `--prune METHOD:RATIO` and its companions and checked up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from edgepack.runtime.errors import OptionError

from ..options import Options, build

Method = Literal["channels", "unstructured"]
Scope = Literal["layer", "global"]
Criterion = Literal["l1", "l2", "activation"]


@dataclass(frozen=True)
class PruneOptions(Options):
    """What to prune and how.

    method: `channels` removes whole output channels and neurons (shapes shrink); `unstructured` sets the
        smallest weights to zero (shapes stay; the lossless coder gains).
    ratio: fraction of prunable channels (or weights) to remove, 0 < ratio < 1.
    scope: `layer` removes `ratio` of each layer; `global` ranks all layers together (scores normalised by
        each layer's mean) and removes `ratio` of the total, no layer losing more than `max_layer_ratio`.
    criterion: `l1` / `l2` norm of each channel's filter; `activation`: the norm of the weights that read the
        channel times the mean magnitude of the channel on the calibration data (needs samples).
    reconstruct: refit every layer whose inputs shrank by least squares on calibration activations.
    ridge: the refit's pull towards the original weights, relative to the mean input energy.
    max_layer_ratio: the most of one layer the global scope may remove.
    round_to: keep a multiple of this many channels in each layer (at least as many as it keeps blocked):
        onnxruntime's x86 convolutions work on blocks of 8 (AVX2) or 16 (AVX-512) channels, and other counts
        can make a pruned model slower than the original (benchmarks/prune.py measures it).
    """

    method: Method = "channels"
    ratio: float = 0.3
    scope: Scope = "layer"
    criterion: Criterion = "l1"
    reconstruct: bool = False
    ridge: float = 1e-2
    max_layer_ratio: float = 0.9
    round_to: int = 1

    WHAT: ClassVar[str] = "pruning"
    SPELLING: ClassVar[dict[str, str]] = {
        "method": "prune method", "ratio": "prune ratio", "scope": "--prune-scope", "criterion": "--prune-criterion",
        "reconstruct": "--reconstruct", "round_to": "--prune-round-to"}
    ACCEPTS: ClassVar[dict[str, str]] = {"ridge": "positive", "round_to": "a positive whole number",
                                         "max_layer_ratio": "between 0 and 1 (exclusive)"}

    def _check(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise self.refuse("ratio", "between 0 and 1 (exclusive)", "; e.g. --prune channels:0.3")
        if self.reconstruct and self.method != "channels":
            raise OptionError("--reconstruct refits layers whose inputs lost channels; use it with "
                              "--prune channels:RATIO")
        if not self.ridge > 0:
            raise self.refuse("ridge")
        if self.round_to < 1:
            raise self.refuse("round_to")
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise self.refuse("max_layer_ratio")

    @property
    def needs_samples(self) -> bool:
        return self.reconstruct or self.criterion == "activation"

    @property
    def spec(self) -> str:
        return f"{self.method}:{self.ratio:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, spec: str, **options: Any) -> PruneOptions:
        """`channels:0.3` or `unstructured:0.5`, plus keyword options (scope, criterion, reconstruct, ...)."""
        method, sep, ratio = str(spec).partition(":")
        if not sep:
            raise OptionError(f"--prune {spec!r}: give METHOD:RATIO, e.g. channels:0.3 or unstructured:0.5")
        try:
            value = float(ratio)
        except ValueError:
            raise OptionError(f"--prune {spec!r}: the ratio {ratio!r} is not a number; e.g. channels:0.3") from None
        return build(cls, {**options, "method": method, "ratio": value})
