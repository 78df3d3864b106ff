"""`edgepack package` options on how int8 is chosen and how fidelity is measured (kept apart from cli.py).

    --recipe measure|profile      int8-static: measure the formats on this host, or take the profile's
    --output-kind NAME=KIND       class[:AXIS] | regression | ignore, per output (repeatable)
    --min-mean-cosine VALUE       budget on the mean cosine over samples (--min-cosine: the worst sample)
    --allow-slower                let the budget search choose a quantized recipe slower than fp32 here
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import click

OPTIONS = [
    click.option("--recipe", type=click.Choice(["measure", "profile"]), default=None,
                 help="int8-static: measure S8S8/U8S8, QDQ/QOperator, per-channel/per-tensor on this host and keep "
                      "the fastest within tolerance (default, when this host runs the target's kernels), or take "
                      "the profile's format (reproducible bundles: no timing decides anything)."),
    click.option("--output-kind", "output_kind", multiple=True, metavar="NAME=KIND",
                 help="What an output holds: class[:AXIS] (top-1 agreement over that axis), regression (cosine "
                      "and errors only) or ignore. Repeatable. Default: class for (1, classes) outputs."),
    click.option("--min-mean-cosine", type=float, default=None, metavar="VALUE",
                 help="Budget: cosine similarity with the original's outputs, mean over the --eval samples."),
    click.option("--allow-slower", is_flag=True, default=None,
                 help="Budget search: allow a quantized recipe slower than fp32 on this host (by default one that "
                      "matches the target must run at most as slow as fp32)."),
]


def fidelity_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def take(options: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """Remove this module's options from the package command's keyword arguments: (budget fields, output
    kinds); --recipe stays, as a quantization option."""
    budget = {"min_mean_cosine": options.pop("min_mean_cosine", None),
              "allow_slower": options.pop("allow_slower", None)}
    kinds = list(options.pop("output_kind", ()) or ()) or None
    return {k: v for k, v in budget.items() if v is not None}, kinds
