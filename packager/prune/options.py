"""Typed pruning options, parsed from `--prune METHOD:RATIO` and its companions and checked up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from edgepack.runtime.errors import OptionError

Method = Literal["channels", "unstructured"]
Scope = Literal["layer", "global"]
Criterion = Literal["l1", "l2", "activation"]


@dataclass(frozen=True)
class PruneOptions:
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

    def __post_init__(self) -> None:
        _choice("prune method", self.method, Method)
        _choice("--prune-scope", self.scope, Scope)
        _choice("--prune-criterion", self.criterion, Criterion)
        if not isinstance(self.ratio, (int, float)) or not 0.0 < float(self.ratio) < 1.0:
            raise OptionError(f"prune ratio must be between 0 and 1 (exclusive), got {self.ratio!r}; "
                              "e.g. --prune channels:0.3")
        if self.reconstruct and self.method != "channels":
            raise OptionError("--reconstruct refits layers whose inputs lost channels; use it with "
                              "--prune channels:RATIO")
        if not self.ridge > 0:
            raise OptionError(f"ridge must be positive, got {self.ridge!r}")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise OptionError(f"--prune-round-to must be a positive whole number, got {self.round_to!r}")
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise OptionError(f"max_layer_ratio must be between 0 and 1 (exclusive), got {self.max_layer_ratio!r}")

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
        _choice("prune method", method, Method)
        try:
            value = float(ratio)
        except ValueError:
            raise OptionError(f"--prune {spec!r}: the ratio {ratio!r} is not a number; e.g. channels:0.3") from None
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise OptionError(f"unknown pruning option(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(method=method, ratio=value, **options)  # type: ignore[arg-type]


def _choice(what: str, value: Any, kind: Any) -> None:
    allowed = get_args(kind)
    if value not in allowed:
        raise OptionError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
