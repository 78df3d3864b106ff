"""Output paths checked before any work: a missing folder, a folder given as the file, or an output that is one
of the inputs is refused at once with one line, rather than after minutes of work or by replacing the input."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .errors import OptionError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether `a` and `b` name the same existing file (through symbolic or hard links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output") -> str:
    """Refuse `output` (a file to write; "-" is standard output) when its folder does not exist or cannot be
    written, when it is a folder, or when it is one of `inputs` (the same file under any name). Returns it."""
    path = os.fspath(output)
    if path == "-":
        return path
    if not path:
        raise OptionError(f"{what}: give the path of the file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OptionError(f"{what} {path}: the folder {folder} does not exist; create it first (mkdir -p) or "
                          "choose another path")
    if os.path.isdir(path):
        raise OptionError(f"{what} {path} is a folder; give the path of the file to write in it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(f"{what} {path}: cannot write in the folder {folder} (permission denied)")
    for source in inputs:
        if source is not None and isinstance(source, (str, os.PathLike)) and same_file(path, source):
            raise OptionError(f"{what} {path} is the input {os.fspath(source)}: edgepack never overwrites its "
                              "input; choose another output path")
    return path
