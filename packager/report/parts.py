"""The pieces report sections are made of: paragraphs (str), tables, bars in table cells, and the plot."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import plot


@dataclass
class Bar:
    """A table cell drawn as a bar (HTML) or plain text (Markdown)."""

    fraction: float
    text: str


Cell = str | Bar


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    numeric: set[int] = field(default_factory=set)   # right-aligned columns


Item = str | Table | plot.Figure


@dataclass
class Section:
    title: str
    items: list[Item]
