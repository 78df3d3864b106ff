"""`edgepack report`: what was done to a bundle and what it costs, for people (docs/BUDGET.md, "The report").

    write_report("model.edgepack", "report.html")             # or .md, .json; measure=False to skip timing

collect.py gathers the data (manifest, plus memory and latency measured now in a child process),
content.py lays it out, html.py and markdown.py render it, plot.py draws the trials' plot.
"""

from __future__ import annotations

import json
import os
from typing import Any

from edgepack.runtime.errors import OptionError
from edgepack.runtime.paths import check_output

FORMATS = ("html", "md", "json")
PLOTS = ("auto", "matplotlib", "svg")


def format_for(output: str, fmt: str | None) -> str:
    """The format asked for, else the one the output's suffix names, else html."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise OptionError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = os.path.splitext(output)[1].lower().lstrip(".")
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix) if suffix in (*FORMATS, "htm", "markdown") \
        else "html"


def render(data: dict[str, Any], fmt: str, plot: str = "auto") -> str:
    if plot not in PLOTS:
        raise OptionError(f"plot must be one of {', '.join(PLOTS)}, got {plot!r}")
    if fmt == "json":
        return json.dumps(data, indent=1, sort_keys=True) + "\n"
    if fmt == "md":
        from .markdown import render as md

        return md(data)
    from .html import render as html

    return html(data, plot)


def write_report(bundle: str | os.PathLike, output: str | os.PathLike, fmt: str | None = None,
                 measure: bool = True, runs: int = 50, inputs: str | os.PathLike | None = None,
                 plot: str = "auto", shapes: dict[str, Any] | None = None) -> str:
    """Write the report on `bundle` to `output` (atomically; "-": return it only) and return its text.
    shapes: input name -> shape of the random feeds the measurement runs on (see runtime.measure.measure)."""
    from ..untrusted import printable_document, recorded_fields
    from ..writer import write_atomic
    from .collect import collect

    path = check_output(output, [bundle, inputs], "report")
    fmt = format_for(path, fmt)
    if runs < 1:
        raise OptionError(f"--runs must be at least 1, got {runs}")
    if plot not in PLOTS:
        raise OptionError(f"plot must be one of {', '.join(PLOTS)}, got {plot!r}")
    with recorded_fields(bundle):  # the manifest's report and provenance may hold anything
        text = printable_document(render(collect(bundle, measure=measure, runs=runs, inputs=inputs, shapes=shapes),
                                         fmt, plot))
    if path != "-":
        write_atomic(path, [text.encode("utf-8")])
    return text


__all__ = ["FORMATS", "PLOTS", "format_for", "render", "write_report"]
