"""Showing what a bundle's manifest says, when the bundle may come from anyone.

A well-formed bundle can carry any JSON in its free-form `target`, `provenance` and `report` objects, and any
string as a tensor name (lone surrogates and terminal escapes included). The code that lays these out for
people (`edgepack inspect`, `edgepack report`) expects what the packager writes; `recorded_fields` turns
its failure on anything else into one typed error, and `printable` makes any string safe to print.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator

from edgepack.runtime.errors import MalformedRecord

# What laying out a value of an unexpected type or shape raises: None.get, "x" + 1, f"{'a':,}", d["missing"],
# [][0], int("1e999"), a ratio of 0 bytes. Nothing else is caught.
LAYOUT_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, ZeroDivisionError)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: Any, keep: str = "") -> str:
    """`text` as a string with every non-printable character (controls, terminal escapes, lone surrogates,
    unassigned code points) written as a Python-style escape, except those in `keep` (such as "\\n")."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escape(ch) for ch in text)


def printable_document(text: str) -> str:
    """A whole document (HTML, Markdown, JSON) made safe to write as UTF-8: newlines and tabs kept."""
    return printable(text, keep="\n\t")


@contextmanager
def recorded_fields(path: str | os.PathLike) -> Iterator[None]:
    """Within: a layout error on the manifest's free-form fields is a MalformedRecord naming the bundle."""
    try:
        yield
    except LAYOUT_ERRORS as e:
        raise MalformedRecord(os.fspath(path), f"{type(e).__name__}: {printable(e)[:200]}") from None
    except RecursionError:
        raise MalformedRecord(os.fspath(path), "nested too deeply to show") from None
