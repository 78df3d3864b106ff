"""The `edgepack` command: thin wrappers over the Python API, one per subcommand.

This module holds the group (one-line errors), `run`, `measure`, `inspect` and `report`; the other commands
live in one module per topic (cli_package, cli_sign, cli_delta, cli_targets, cli_llm, cli_model), each with a
`register(group)` that cli.py calls. Options several commands share are in cli_options.py and cli_fidelity.py.

Errors on bad input print one line (`edgepack: error: ...`) and exit 1; usage errors exit 2; a bug prints one
line and exits 3 (set EDGEPACK_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

import click

from edgepack.runtime.errors import EdgepackError, OptionError
from edgepack.runtime.text import clip

from . import cli_delta, cli_llm, cli_model, cli_package, cli_sign, cli_targets
from .cli_options import run_inputs, run_once, shape_option, shapes_of
from .cli_package import parse_size
from .cli_show import safe

__all__ = ["cli", "main", "parse_size"]


def _one_line(text: object) -> str:
    from edgepack.packager.untrusted import printable  # escapes lone surrogates and terminal controls

    return printable(" ".join(str(text).split()))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # a subgroup (targets): the top level captures and reports
            return super().invoke(ctx)
        from .cli_options import native_stderr_captured, with_native_log

        with native_stderr_captured() as log:  # onnxruntime's log lines: into the error, never raw
            return self._invoke(ctx, log, with_native_log)

    def _invoke(self, ctx: click.Context, log: Any, with_native_log: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EdgepackError as e:
            click.echo(f"edgepack: error: {_one_line(with_native_log(e, log))}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, BrokenPipeError):
            raise
        except KeyboardInterrupt:
            click.echo("edgepack: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:
            if os.environ.get("EDGEPACK_DEBUG"):
                raise
            click.echo(f"edgepack: internal error: {type(e).__name__}: {clip(_one_line(e), 500)} "
                       "(a bug; rerun with EDGEPACK_DEBUG=1 for a traceback)", err=True)
            ctx.exit(3)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edgepack")
def cli() -> None:
    """Package neural networks for edge devices, and run them there."""


# --- run -----------------------------------------------------------------------------------------------

@cli.command("run")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False), default=None,
              help=".npz of feeds keyed by input name (default: random feeds, and it says so).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Write the outputs to this .npz, keyed by output name.")
@click.option("--target", default=None, help="Run with this profile instead of the one the bundle records.")
@click.option("--force", is_flag=True, help="Run even where this device lacks what the profile requires.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Refuse the bundle unless this key (a .pub file from keygen) signed it.")
@shape_option
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop the run after this many seconds (an error, exit 1).")
def run_cmd(bundle: str, inputs_path: str | None, output_path: str | None, target: str | None,
            force: bool, public_key: str | None, shapes: tuple[str, ...], timeout: float | None) -> None:
    """Run BUNDLE once and print its outputs' shapes and first values (a sequence output is saved to --output as
    NAME[0], NAME[1], ...)."""
    import numpy as np

    from edgepack.packager.writer import write_atomic
    from edgepack.runtime import load

    from .cli_show import npz_arrays, output_lines

    feeds, given = run_inputs(bundle, inputs_path, output_path, shapes)  # every path checked before any work
    outputs = run_once(load(bundle, target=target, force=force, public_key=public_key), feeds, given, timeout)
    # an output an .npz cannot hold (a map) is refused before anything is printed
    arrays: dict[str, Any] = npz_arrays(outputs) if output_path else {}
    for line in output_lines(outputs):
        click.echo(line)
    if output_path:
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(output_path, [buf.getvalue()])
        click.echo(f"wrote {output_path}")


# --- measure -------------------------------------------------------------------------------------------

def _progress(side: str, report: dict[str, Any]) -> None:
    if report.get("stage") == "runs":
        click.echo(f"edgepack: measuring {side} (process {report['process']}/{report['processes']}): "
                   f"{report['done']}/{report['runs']} runs", err=True)


@cli.command("measure")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="An .onnx file (with its external data files beside it, if it has any): measure plain "
                   "onnxruntime on it too, side by side, with ratios.")
@click.option("--runs", type=click.IntRange(0), default=100, show_default=True, help="Runs after the first.")
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False), default=None,
              help=".npz of feeds keyed by input name (default: seeded random feeds).")
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True,
              help="Fresh processes per side, alternating; figures are their medians.")
@click.option("--target", default=None, help="Measure with this profile instead of the one the bundle records.")
@click.option("--force", is_flag=True, help="Run even where this device lacks what the profile requires.")
@click.option("--lean/--no-lean", default=None, help="Memory-lean mode on or off (default: the profile's).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--public-key", type=click.Path(dir_okay=False), default=None,
              help="Refuse the bundle unless this key (a .pub file from keygen) signed it; a signed bundle then "
                   "loads as it would be deployed with its key (trusted limits).")
@shape_option
def measure_cmd(bundle: str, baseline: str | None, runs: int, inputs_path: str | None, repeat: int,
                target: str | None, force: bool, lean: bool | None, as_json: bool, public_key: str | None,
                shapes: tuple[str, ...]) -> None:
    """Measure what BUNDLE costs on this device, in fresh processes: bundle bytes, time to first inference,
    peak and steady RSS, latency percentiles, throughput, and whether it fits the profile's memory budget."""
    from edgepack.runtime.measure import lines, measure
    from edgepack.runtime.llm_measure import is_language_model

    if is_language_model(bundle) and baseline is None:
        if inputs_path or shapes:
            raise OptionError("--inputs and --shape do not apply to a language model: measure generates from a "
                              "made-up prompt of token ids")
        return cli_llm.measure_lm(bundle, repeat, as_json, target=target, force=force, lean=lean,
                                  public_key=public_key)
    report = measure(bundle, baseline, runs=runs, inputs=inputs_path, repeat=repeat, target=target, force=force,
                     lean=lean, progress=_progress, shapes=shapes_of(shapes), public_key=public_key)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for line in lines(report):
            click.echo(safe(line))  # recorded target names, load warnings: the bundle's word


# --- inspect -------------------------------------------------------------------------------------------

@cli.command("inspect")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and sizes as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every tensor (default: the 20 largest).")
def inspect_cmd(bundle: str, as_json: bool, show_all: bool) -> None:
    """Show BUNDLE's manifest: target, provenance, tensors and sizes (or a delta's base, result and changed
    tensors). Decodes no tensor."""
    from edgepack.packager.show import inspect_lines, summary_json
    from edgepack.runtime.delta_reader import is_delta

    if is_delta(bundle):
        return cli_delta.inspect_delta(bundle, as_json)

    for line in [summary_json(bundle)] if as_json else inspect_lines(bundle, show_all):
        click.echo(line)


# --- report --------------------------------------------------------------------------------------------

@cli.command("report")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (atomically); '-' prints it.")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default=None,
              help="Default: from the output's suffix (.html, .md, .json), else html.")
@click.option("--measure/--no-measure", default=True, show_default=True,
              help="Measure peak memory and latency now, on this machine, in a fresh process.")
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help="Runs after the first.")
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False), default=None,
              help=".npz of feeds for the measurement (default: seeded random feeds).")
@click.option("--plot", type=click.Choice(["auto", "matplotlib", "svg"]), default="auto", show_default=True,
              help="Who draws the trials' plot: matplotlib when installed (auto), or inline SVG.")
@shape_option
def report_cmd(bundle: str, output: str, fmt: str | None, measure: bool, runs: int, inputs_path: str | None,
               plot: str, shapes: tuple[str, ...]) -> None:
    """Write a report on BUNDLE: what was done, size per layer, fidelity, sensitivity, the budget search's
    trials as a plot, and memory and latency measured on this machine."""
    from edgepack.packager.report import format_for, write_report

    text = write_report(bundle, output, fmt, measure=measure, runs=runs, inputs=inputs_path, plot=plot,
                        shapes=shapes_of(shapes))
    if output == "-":
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output} ({format_for(output, fmt)}, {len(text.encode()):,} bytes)")


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    """Warnings as one line each, like errors (the default format adds the file and source line)."""
    click.echo(f"edgepack: warning: {_one_line(message)}", err=True)


def main(argv: list[str] | None = None) -> None:
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="edgepack")
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


for _topic in (cli_package, cli_sign, cli_delta, cli_targets, cli_llm, cli_model):  # one module per topic
    _topic.register(cli)

if __name__ == "__main__":
    main()
