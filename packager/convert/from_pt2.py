"""A .pt2 file (torch.export.save): an ExportedProgram that loads without the model's Python class.

torch.export.load unpickles parts of the archive (the example inputs, tensor subclasses, custom objects)
and, when the weights-only unpickler refuses something, falls back to the full one, which runs whatever
code the file holds. Unless the caller trusts the file, loading here forces every torch.load to
weights_only=True (tensors and plain containers only) and refuses the archive's other unpickling paths; an
ordinary .pt2 (parameters, buffers, tensor example inputs) loads that way.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import SimpleNamespace
from typing import Any
from collections.abc import Iterator

from edgepack.packager.errors import UntrustedPickle
from edgepack.runtime.errors import ModelError
from edgepack.runtime.text import error_line

from ..imported import Source, hash_files
from .extras import require
from .from_torch import from_program, quiet
from .options import ConvertOptions

_PATCH_LOCK = threading.Lock()  # the guard swaps module attributes: one load at a time


class _Refused(Exception):
    """Raised inside torch.export.load where it would run the full unpickler."""


@contextlib.contextmanager
def _weights_only(torch: Any) -> Iterator[list[str]]:
    from torch.export.pt2_archive import _package

    real = (torch.load, torch._C._pickle_load_obj, _package.pickle)
    refused: list[str] = []

    def load(f: Any, *args: Any, weights_only: Any = None, **kwargs: Any) -> Any:
        if weights_only is False:
            refused.append("torch.load(weights_only=False)")
            raise _Refused("full unpickler refused")
        return real[0](f, *args, weights_only=True, **kwargs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        refused.append("pickle.loads")
        raise _Refused("full unpickler refused")

    with _PATCH_LOCK:
        torch.load, torch._C._pickle_load_obj = load, refuse
        # the archive reader only calls pickle.loads: a namespace with that one name stands in for the module
        _package.pickle = SimpleNamespace(loads=refuse)  # type: ignore[assignment]
        try:
            yield refused
        finally:
            torch.load, torch._C._pickle_load_obj, _package.pickle = real


def load_program(path: str, trust_pickle: bool) -> Any:
    """The ExportedProgram saved at `path`; without `trust_pickle`, only if no code has to run to load it."""
    torch = require("torch", "reading a .pt2 ExportedProgram", "torch")
    guard: contextlib.AbstractContextManager[list[str]] = \
        contextlib.nullcontext([]) if trust_pickle else _weights_only(torch)
    program, error = None, None
    with quiet(), guard as refused:  # quiet: torch 2.13 logs the full-unpickler fallback with a broken format
        try:
            program = torch.export.load(path)
        except Exception as e:
            error = e
    if refused:  # even if torch went on without the refused object: the program may be incomplete
        raise UntrustedPickle(
            f"{path}: this .pt2 holds Python objects that only the full unpickler loads, and unpickling runs any "
            "code the file contains; pass --trust-pickle (Python: convert={'trust_pickle': True}) only for a file "
            "you made or trust") from error
    if error is not None:
        raise ModelError(f"{path}: not a .pt2 file torch.export.load can read ({type(error).__name__}: "
                         f"{error_line(error)}); "
                         "save it with torch.export.save(torch.export.export(model, args), path)") from error
    if not isinstance(program, torch.export.ExportedProgram):
        raise ModelError(f"{path}: holds a {type(program).__name__}, not an ExportedProgram")
    return program


def from_pt2(path: str, opts: ConvertOptions) -> Source:
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    program = load_program(path, opts.trust_pickle)
    sha, size = hash_files([path])
    return from_program(program, opts, os.path.basename(path), sha, size)
