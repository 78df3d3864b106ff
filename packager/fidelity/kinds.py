"""What kind of values each model output holds, for fidelity figures that cannot hide damage.

    class        scores over classes along one axis (default the last): top-1 agreement (and accuracy
                 against labels) means something there
    regression   any other float output (a detector's boxes over 2,100 anchors, an embedding, a recurrent
                 state): cosine similarity and the largest errors, no top-1
    ignore       left out of the figures and the budgets (say, a debug output)

Without a word from the user (`--output-kind NAME=class[:AXIS]|regression|ignore`), an output is a class output
when each sample's output is a matrix of one row of at least 2 scores (shape (1, C): softmax or logits of one
sample), unless its name says it is a state or an embedding (state, hidden, embed, pool, feature); anything
else is regression. Outputs with fewer than SMALL values per sample (a probability, a score) get a cosine over
all samples together: the cosine of one number with another of the same sign is always 1, so a per-sample
cosine would report a probability off by 0.96 as 1.0000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

import numpy as np

from edgepack.runtime.errors import OptionError

SMALL = 8   # values per sample below which the cosine is taken over all samples together
KINDS = ("class", "regression", "ignore")
_NOT_CLASS = re.compile(r"state|hidden|embed|pool|feature|(^|[_./])(h|c)n?($|[_./])", re.IGNORECASE)


@dataclass(frozen=True)
class OutputKind:
    kind: str                 # class, regression or ignore
    axis: int = -1            # the class axis (class outputs)
    given: bool = False       # named by the user, not guessed

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "by": "user" if self.given else "shape"}
        if self.kind == "class":
            out["axis"] = self.axis
        return out


def parse(specs: Mapping[str, str] | list[str] | tuple[str, ...] | None) -> dict[str, OutputKind]:
    """{"probs": "class:1"} or ["probs=class:1", "state=regression"] -> {name: OutputKind}."""
    if not specs:
        return {}
    items: list[tuple[str, str]] = []
    if isinstance(specs, Mapping):
        items = [(str(k), str(v)) for k, v in specs.items()]
    else:
        for spec in specs:
            name, sep, value = str(spec).partition("=")
            if not sep or not name.strip():
                raise OptionError(f"--output-kind {spec!r}: write NAME=class[:AXIS], NAME=regression or NAME=ignore")
            items.append((name.strip(), value.strip()))
    out = {}
    for name, value in items:
        kind, _, axis = value.partition(":")
        if kind not in KINDS:
            raise OptionError(f"--output-kind {name}={value}: the kind must be one of {', '.join(KINDS)}")
        if axis and kind != "class":
            raise OptionError(f"--output-kind {name}={value}: only class outputs take an axis")
        try:
            out[name] = OutputKind(kind, int(axis) if axis else -1, True)
        except ValueError:
            raise OptionError(f"--output-kind {name}={value}: the class axis must be an integer") from None
    return out


def check_names(kinds: dict[str, OutputKind], names: list[str]) -> None:
    unknown = sorted(set(kinds) - set(names))
    if unknown:
        raise OptionError(f"--output-kind names {unknown}, which the model does not output (its outputs: {names})")


def guess(name: str, sample: np.ndarray) -> OutputKind:
    """The kind of an output from one sample's value and its name."""
    if sample.dtype.kind != "f":
        return OutputKind("regression")
    if sample.ndim == 2 and sample.shape[0] == 1 and sample.shape[-1] >= 2 and not _NOT_CLASS.search(name):
        return OutputKind("class", -1)
    return OutputKind("regression")


def kind_of(name: str, sample: np.ndarray, kinds: dict[str, OutputKind] | None) -> OutputKind:
    given = (kinds or {}).get(name)
    if given is None:
        return guess(name, sample)
    if given.kind == "class" and not -sample.ndim <= given.axis < sample.ndim:
        raise OptionError(f"--output-kind {name}=class:{given.axis}: the output has {sample.ndim} axes "
                          f"(shape {list(sample.shape)})")
    return given
