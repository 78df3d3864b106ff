"""The search's trials as a size-against-fidelity plot, embedded in the HTML report.

With matplotlib (`pip install 'edgepack[report]'`) the plot is a PNG drawn by it; without, edgepack draws
the same plot as inline SVG itself. A report must be readable wherever edgepack is installed, and matplotlib
is a large dependency the packager does not otherwise need; the SVG needs none, stays crisp at any zoom and
keeps each point's recipe as a tooltip. Both show the same points, lines and labels (tests check both).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Any

from edgepack.runtime.text import counted


@dataclass
class Point:
    x: float                 # bundle bytes
    y: float                 # the fidelity figure, in the plot's unit
    kind: str                # met, missed, chosen, original
    label: str               # tooltip / legend text


@dataclass
class Figure:
    points: list[Point]
    y_label: str
    y_limit: float | None = None      # the fidelity budget, as a horizontal line
    x_limit: float | None = None      # --max-bytes, as a vertical line
    notes: list[str] = field(default_factory=list)


def figure(search: dict[str, Any], source_bytes: int) -> Figure | None:
    """The plot's content from the report's search record; None when no trial was measured."""
    trials = [t for t in search.get("trials", []) if t.get("bytes")]
    if not trials:
        return None
    budget = search.get("budget", {})
    if any("accuracy" in t for t in trials):
        ref = 100 * next(t["reference_accuracy"] for t in trials if "reference_accuracy" in t)
        value = lambda t: 100 * t["accuracy"] if "accuracy" in t else None
        fig = Figure([], "accuracy on the eval data (%)")
        if "max_accuracy_drop" in budget:
            fig.y_limit = ref - budget["max_accuracy_drop"]
    elif any("agreement" in t for t in trials):
        ref = 100.0
        value = lambda t: 100 * t["agreement"] if "agreement" in t else None
        fig = Figure([], "top-1 agreement with the original (%)")
        if "min_agreement" in budget:
            fig.y_limit = 100 * budget["min_agreement"]
    else:
        ref = 1.0
        value = lambda t: t.get("cosine")
        fig = Figure([], "mean cosine similarity with the original")
        if "min_cosine" in budget:
            fig.y_limit = budget["min_cosine"]
    fig.x_limit = budget.get("max_bytes")
    fig.points.append(Point(source_bytes, ref, "original", f"original model: {source_bytes:,} bytes"))
    for t in trials:
        y = value(t)
        if y is None:
            continue
        kind = "chosen" if t["index"] == search.get("chosen") else "met" if t.get("meets") else "missed"
        floats = len(t.get("float_nodes", []))
        label = (f"trial {t['index']} ({t['stage']}): {t['mode']}"
                 + (f", pruned {t['prune_ratio']:g}" if t.get("prune_ratio") else "")
                 + f", {counted(floats, 'node')} in float, {t['bytes']:,} bytes, {y:.4g}")
        fig.points.append(Point(t["bytes"], y, kind, label))
    return fig


# --- scales --------------------------------------------------------------------------------------------

def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    span = hi - lo or abs(hi) or 1.0
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 2) if first + i * step <= hi + step * 1e-9]


def _range(values: list[float], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo or abs(hi) * 0.1 or 1.0
    return lo - pad * span, hi + pad * span


def _bytes_tick(v: float) -> str:
    return f"{v / 1e6:g} MB" if v >= 1e6 else f"{v / 1e3:g} KB" if v >= 1e3 else f"{v:g} B"


COLORS = {"met": "#2e7d32", "missed": "#c62828", "chosen": "#1565c0", "original": "#616161"}
LEGEND = {"chosen": "chosen", "met": "meets the budget", "missed": "misses it", "original": "original model"}


# --- SVG -----------------------------------------------------------------------------------------------

def svg(fig: Figure, width: int = 720, height: int = 400) -> str:
    """The plot as an inline <svg> element."""
    left, right, top, bottom = 70, 20, 20, 70
    xs = [p.x for p in fig.points] + ([fig.x_limit] if fig.x_limit else [])
    ys = [p.y for p in fig.points] + ([fig.y_limit] if fig.y_limit is not None else [])
    (x0, x1), (y0, y1) = _range(xs), _range(ys)
    sx = lambda v: left + (v - x0) / (x1 - x0) * (width - left - right)
    sy = lambda v: height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="trials: bundle size against {html.escape(fig.y_label)}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    for v in _ticks(x0, x1):
        if x0 <= v <= x1:
            out.append(f'<line x1="{sx(v):.1f}" y1="{top}" x2="{sx(v):.1f}" y2="{height - bottom}" stroke="#eee"/>'
                       f'<text x="{sx(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{_bytes_tick(v)}</text>')
    for v in _ticks(y0, y1):
        if y0 <= v <= y1:
            out.append(f'<line x1="{left}" y1="{sy(v):.1f}" x2="{width - right}" y2="{sy(v):.1f}" stroke="#eee"/>'
                       f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               'fill="none" stroke="#999"/>')
    if fig.y_limit is not None:
        out.append(f'<line x1="{left}" y1="{sy(fig.y_limit):.1f}" x2="{width - right}" y2="{sy(fig.y_limit):.1f}" '
                   f'stroke="#ef6c00" stroke-dasharray="6 4"/><text x="{left + 4}" y="{sy(fig.y_limit) - 5:.1f}" '
                   'fill="#ef6c00">budget</text>')
    if fig.x_limit:
        out.append(f'<line x1="{sx(fig.x_limit):.1f}" y1="{top}" x2="{sx(fig.x_limit):.1f}" y2="{height - bottom}" '
                   f'stroke="#ef6c00" stroke-dasharray="6 4"/><text x="{sx(fig.x_limit) + 4:.1f}" y="{top + 14}" '
                   'fill="#ef6c00">--max-bytes</text>')
    for p in sorted(fig.points, key=lambda p: p.kind == "chosen"):
        out.append(_marker(p, sx(p.x), sy(p.y)))
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 36}" text-anchor="middle">'
               'bundle size</text>')
    out.append(f'<text transform="translate(16 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">'
               f'{html.escape(fig.y_label)}</text>')
    x = left
    for kind, text in LEGEND.items():
        if any(p.kind == kind for p in fig.points):
            out.append(_marker(Point(0, 0, kind, text), x + 6, height - 14) +
                       f'<text x="{x + 16}" y="{height - 10}">{text}</text>')
            x += 30 + 7 * len(text)
    out.append("</svg>")
    return "\n".join(out)


def _marker(p: Point, x: float, y: float) -> str:
    color, title = COLORS[p.kind], f"<title>{html.escape(p.label)}</title>"
    if p.kind == "missed":
        return (f'<g stroke="{color}" stroke-width="2">{title}<line x1="{x - 5:.1f}" y1="{y - 5:.1f}" x2="{x + 5:.1f}" '
                f'y2="{y + 5:.1f}"/><line x1="{x - 5:.1f}" y1="{y + 5:.1f}" x2="{x + 5:.1f}" y2="{y - 5:.1f}"/></g>')
    if p.kind == "original":
        return (f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{color}" '
                f'transform="rotate(45 {x:.1f} {y:.1f})">{title}</rect>')
    r = 8 if p.kind == "chosen" else 5
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}">{title}</circle>'


# --- matplotlib ----------------------------------------------------------------------------------------

def png(fig: Figure) -> bytes:
    """The plot drawn by matplotlib (Agg), as PNG bytes; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    marks = {"met": "o", "missed": "x", "chosen": "o", "original": "D"}
    f, ax = plt.subplots(figsize=(7.2, 4.0), dpi=110)
    try:
        for kind in ("original", "missed", "met", "chosen"):
            pts = [p for p in fig.points if p.kind == kind]
            if pts:
                ax.scatter([p.x / 1e3 for p in pts], [p.y for p in pts], marker=marks[kind], c=COLORS[kind],
                           s=110 if kind == "chosen" else 40, label=LEGEND[kind], zorder=3)
        if fig.y_limit is not None:
            ax.axhline(fig.y_limit, color="#ef6c00", linestyle="--", label="budget")
        if fig.x_limit:
            ax.axvline(fig.x_limit / 1e3, color="#ef6c00", linestyle=":", label="--max-bytes")
        ax.set_xlabel("bundle size (KB)")
        ax.set_ylabel(fig.y_label)
        ax.grid(True, color="#eee")
        ax.legend(fontsize=8, loc="best")
        f.tight_layout()
        buf = io.BytesIO()
        f.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(f)


def embedded(fig: Figure, engine: str = "auto") -> tuple[str, str]:
    """(HTML of the plot, who drew it and why). engine: auto (matplotlib when installed), matplotlib, svg."""
    if engine in ("auto", "matplotlib"):
        try:
            data = base64.b64encode(png(fig)).decode("ascii")
        except ImportError:
            if engine == "matplotlib":
                from edgepack.packager.errors import MissingExtra

                raise MissingExtra("the matplotlib plot", "report", "matplotlib") from None
        else:
            alt = html.escape(f"trials: bundle size against {fig.y_label}")
            return f'<img class="plot" alt="{alt}" src="data:image/png;base64,{data}">', "matplotlib"
        return svg(fig), "svg, matplotlib not installed"
    return svg(fig), "svg"
