"""What a model becomes once read or converted: a `Source`, the ONNX model with what provenance records about
where it came from. source.py (reading what the user passed) and the converters in convert/ both build one;
it lives here, below both, so that neither imports the other's module to reach it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import onnx

# A scikit-learn model saved with joblib or pickle (convert/from_pickle.py): loading one runs its code.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass
class Source:
    """A model ready for the packager, with what provenance records about where it came from."""

    model: onnx.ModelProto
    kind: str                       # "onnx", "torch", "sklearn", ...
    name: str                       # file name (no folders: bundles are deterministic across machines)
    sha256: str                     # of the source bytes as given
    size: int                       # bytes of the source as given
    options: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] | None = None   # a language model's tokenizer and generation settings (report["llm"])


def hash_files(paths: list[str]) -> tuple[str, int]:
    digest, total = hashlib.sha256(), 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
                total += len(chunk)
    return digest.hexdigest(), total
