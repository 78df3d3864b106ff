"""The report as one self-contained HTML file: inline CSS, the plot inline (SVG or a PNG data URI), no
script, no external asset."""

from __future__ import annotations

import html
from typing import Any

from . import plot
from .content import Bar, Section, Table, sections

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1100px;margin:24px auto;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
p{margin:6px 0} .muted{color:#666}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f5f5f5} td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:10px;background:#c62828;margin-right:6px;vertical-align:middle}
.plot{max-width:100%;height:auto;border:1px solid #eee} figure{margin:8px 0} figcaption{color:#666;font-size:12px}
"""


def _cell(value: Any, numeric: bool) -> str:
    if isinstance(value, Bar):
        width = max(1, round(120 * min(max(value.fraction, 0.0), 1.0)))
        return f'<td><span class="bar" style="width:{width}px"></span>{html.escape(value.text)}</td>'
    return f'<td{" class=n" if numeric else ""}>{html.escape(str(value))}</td>'


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    rows = "".join("<tr>" + "".join(_cell(v, i in t.numeric) for i, v in enumerate(r)) + "</tr>" for r in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _section(s: Section, engine: str) -> str:
    parts = [f"<h2>{html.escape(s.title)}</h2>"]
    for item in s.items:
        if isinstance(item, Table):
            parts.append(_table(item))
        elif isinstance(item, plot.Figure):
            drawn, by = plot.embedded(item, engine)
            note = "Drawn by matplotlib" if by == "matplotlib" else "Drawn as inline SVG" + (
                " (pip install 'edgepack[report]' to draw it with matplotlib)" if "not installed" in by else "") + \
                "; hover a point for its recipe"
            parts.append(f'<figure id="trials-plot">{drawn}<figcaption>Each trial: bundle size against '
                         f'{html.escape(item.y_label)}; dashed lines: the budget. {note}.</figcaption></figure>')
        else:
            parts.append(f"<p>{html.escape(item)}</p>")
    return "\n".join(parts)


def render(data: dict[str, Any], engine: str = "auto") -> str:
    title = f"edgepack report: {data['bundle']['name']}"
    body = "\n".join(_section(s, engine) for s in sections(data))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f'<p class="muted">{html.escape(data["generated_by"])}</p>\n{body}\n</body>\n</html>\n')
