"""How `edgepack run` shows and saves a model's outputs: tensors, sequences of tensors (SequenceConstruct,
SplitToSequence) and maps (ZipMap, as scikit-learn classifiers' probabilities come). Names and values are the
bundle's word, so every printed line is escaped (terminal control sequences shown, never sent)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepack.packager.untrusted import printable
from edgepack.runtime.errors import InputError
from edgepack.runtime.text import clip


def safe(text: object) -> str:
    """`text` with control characters, terminal escapes and lone surrogates written as escapes."""
    return printable(str(text))


def _tensor(value: np.ndarray) -> str:
    flat = np.asarray(value).ravel()
    return (f"{value.dtype}{list(value.shape)} {np.array2string(flat[:6], precision=4)}"
            f"{' ...' if flat.size > 6 else ''}")


def _map(value: dict) -> str:
    items = list(value.items())
    shown = ", ".join(f"{k!r}: {float(v):.4g}" if isinstance(v, (float, np.floating)) else f"{k!r}: {v!r}"
                      for k, v in items[:6])
    return "{" + shown + (", ..." if len(items) > 6 else "") + "}"


def describe(value: Any) -> str:
    """One line for one output value (its name not included)."""
    if isinstance(value, np.ndarray):
        return _tensor(value)
    if isinstance(value, dict):
        return "map " + _map(value)
    if isinstance(value, (list, tuple)):
        kinds = {"tensor" if isinstance(v, np.ndarray) else "map" if isinstance(v, dict) else type(v).__name__
                 for v in value}
        head = f"sequence of {len(value)} {'/'.join(sorted(kinds)) or 'item'}{'s' if len(value) != 1 else ''}"
        if value:
            head += ", first: " + describe(value[0])
        return head
    return f"{type(value).__name__} {clip(repr(value), 80)}"


def output_lines(outputs: dict[str, Any]) -> list[str]:
    """`name: description` per output, escaped."""
    return [safe(f"{name}: {describe(value)}") for name, value in outputs.items()]


def npz_arrays(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The outputs as .npz entries: a tensor under its name, a sequence of tensors as NAME[0], NAME[1], ...;
    string tensors as numpy strings (loadable without pickle). A map (ZipMap) has no .npz form: InputError."""
    out: dict[str, np.ndarray] = {}

    def put(key: str, value: Any, name: str) -> None:
        if not isinstance(value, np.ndarray):
            what = "a map" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise InputError(f"output {clip(repr(name), 80)} holds {what}, which an .npz file cannot hold; drop "
                             "--output (run prints it), or package the model without maps (skl2onnx: "
                             "options={'zipmap': False})")
        if value.dtype == object:
            value = value.astype(str)
        if key in out:
            raise InputError(f"outputs {clip(repr(key), 80)} collide in the .npz; drop --output")
        out[key] = value

    for name, value in outputs.items():
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                put(f"{name}[{i}]", item, name)
        else:
            put(name, value, name)
    return out
