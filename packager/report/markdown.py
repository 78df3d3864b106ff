"""The report as Markdown: the same sections and tables; the plot only in the HTML report."""

from __future__ import annotations

from typing import Any

from . import plot
from .content import Bar, Section, Table, sections


def _text(text: str) -> str:
    """Plain text (much of it the bundle's own: names, descriptions, paths) as Markdown that renders as that
    text: no raw HTML (a source named <script>...</script> went into the report as is, and Markdown viewers
    render inline HTML), no links or images (a remote image is a beacon), one line."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("[", "\\[").replace("]", "\\]").replace("\r", " ").replace("\n", " "))


def _cell(value: Any) -> str:
    text = value.text if isinstance(value, Bar) else str(value)
    return _text(text).replace("|", "\\|")


def _table(t: Table) -> list[str]:
    align = ["---:" if i in t.numeric else "---" for i in range(len(t.header))]
    return ["| " + " | ".join(map(_cell, t.header)) + " |", "| " + " | ".join(align) + " |",
            *["| " + " | ".join(_cell(v) for v in row) + " |" for row in t.rows], ""]


def _section(s: Section) -> list[str]:
    lines = [f"## {_text(s.title)}", ""]
    for item in s.items:
        if isinstance(item, Table):
            lines += _table(item)
        elif isinstance(item, plot.Figure):
            lines += ["(The trials' size-against-fidelity plot is in the HTML report: `--format html`.)", ""]
        else:
            lines += [_text(item), ""]
    return lines


def render(data: dict[str, Any]) -> str:
    lines = [f"# edgepack report: {_text(data['bundle']['name'])}", "", _text(data["generated_by"]), ""]
    for s in sections(data):
        lines += _section(s)
    return "\n".join(lines).rstrip() + "\n"
