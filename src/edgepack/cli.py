"""The `edgepack` command: thin wrappers over the Python API, one per subcommand.

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

from edgepack.cli_delta import apply_cmd, delta_cmd, inspect_delta
from edgepack.cli_fidelity import fidelity_options, take
from edgepack.runtime.errors import EdgepackError
from edgepack.runtime.text import clip

from .cli_model import register as register_model_commands
from .cli_options import load_npz as _load_npz
from .cli_options import run_inputs, run_once, shape_option, shapes_of

from . import cli_llm


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
            click.echo(f"edgepack: internal error: {type(e).__name__}: {clip(e, 500)} "
                       "(a bug; rerun with EDGEPACK_DEBUG=1 for a traceback)", err=True)
            ctx.exit(3)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edgepack")
def cli() -> None:
    """Package neural networks for edge devices, and run them there."""


# --- package -------------------------------------------------------------------------------------------

def _names(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


_QUANT_MODES = ["none", "int8-static", "int8-dynamic", "int4-weight", "fp16"]


@cli.command("package")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--target", default=None, help="Target profile name or file (default: this host's generic profile).")
@click.option("--level", type=click.IntRange(1, 22), default=None,
              help="zstd level for data with repeats (default: the profile's, 3); higher is slower to package. "
                   "Float weights are coded near their entropy bound at any level.")
@click.option("--example-inputs", "example_path", type=click.Path(dir_okay=False), default=None,
              help="scikit-learn: .npz holding one 2-D array (a `labels` array beside it is ignored); its dtype "
                   "sets the input type and the conversion is checked on it (default: float32 rows of the model's "
                   "n_features_in_).")
@click.option("--trust-pickle", is_flag=True,
              help="Allow .joblib/.pkl files (and .pt2 files holding pickled objects): loading them runs any "
                   "code they contain. Only for files you made or trust.")
@click.option("--rtol", type=click.FloatRange(min=0), default=None, help="Conversion check relative tolerance.")
@click.option("--atol", type=click.FloatRange(min=0), default=None, help="Conversion check absolute tolerance.")
@click.option("--prune", "prune", default=None, metavar="METHOD:RATIO",
              help="channels:RATIO removes channels and neurons; unstructured:RATIO zeroes the smallest weights.")
@click.option("--prune-scope", type=click.Choice(["layer", "global"]), default=None,
              help="Prune RATIO of each layer (default) or of the whole network.")
@click.option("--prune-criterion", type=click.Choice(["l1", "l2", "activation"]), default=None,
              help="Rank channels by filter norm (l1, the default; l2) or by weight norm x mean activation.")
@click.option("--prune-round-to", type=click.IntRange(1), default=None, metavar="N",
              help="Keep a multiple of N channels per layer (8 or 16 suit onnxruntime's x86 convolutions).")
@click.option("--reconstruct", is_flag=True, default=None,
              help="Refit the layers whose inputs shrank, by least squares on --calibration data.")
@click.option("--quantize", type=click.Choice(_QUANT_MODES), default=None,
              help="Quantization mode (default: none; with a budget, the target profile's preferred mode).")
@click.option("--calibration", type=click.Path(), default=None,
              help="Calibration samples for int8-static (and fp16's overflow check): an .npz keyed by input name "
                   "with samples along the first axis, or a folder of .npz feeds.")
@click.option("--eval", "eval_data", type=click.Path(), default=None,
              help="Held-out samples (same formats; an array named 'labels' gives accuracy) to compare the "
                   "packaged model with the original on.")
@click.option("--calibration-method", "method", type=click.Choice(["minmax", "entropy", "percentile"]),
              default=None, help="Calibration method (default minmax).")
@click.option("--calibration-samples", type=click.IntRange(1), default=None,
              help="Use at most this many calibration samples.")
@click.option("--per-channel/--per-tensor", "per_channel", default=None,
              help="Weight scales per output channel or per tensor (default: the profile's).")
@click.option("--quant-format", "format", type=click.Choice(["qdq", "qoperator"]), default=None,
              help="int8-static format (default: the profile's).")
@click.option("--activation-type", type=click.Choice(["uint8", "int8"]), default=None,
              help="int8-static activation type (default: the profile's).")
@click.option("--weight-type", type=click.Choice(["int8", "uint8"]), default=None,
              help="int8 weight type (default: the profile's).")
@click.option("--reduce-range/--no-reduce-range", default=None,
              help="7-bit weights, for x86 CPUs without VNNI (default: the profile's).")
@click.option("--op-types", default=None, metavar="LIST",
              help="Comma-separated op types to quantize (default: Conv,MatMul,Gemm for int8-static; "
                   "MatMul,Gemm,Gather for int8-dynamic and int4-weight).")
@click.option("--exclude-nodes", default=None, metavar="LIST", help="Comma-separated node names to keep in float.")
@click.option("--block-size", type=int, default=None, help="int4-weight: weights per scale (default 32).")
@click.option("--accuracy-level", type=int, default=None,
              help="int4-weight: MatMulNBits compute type, 0-4 (default 4: int8, fastest on CPUs).")
@click.option("--int4-method", type=click.Choice(["gptq", "rtn"]), default=None,
              help="int4-weight for language models: gptq (default; calibrated on --calibration TEXT.txt or "
                   "token ids .npz, else on text the model samples) or rtn (round-to-nearest).")
@click.option("--max-perplexity-increase", type=click.FloatRange(min=0), default=None, metavar="PCT",
              help="int4-weight for language models: keep the most sensitive MatMuls at 8 bits until perplexity "
                   "on the calibration text is within PCT % of the float model's.")
@click.option("--symmetric/--asymmetric", default=None, help="int4-weight: symmetric blocks (default asymmetric).")
@click.option("--allow-unquantized", is_flag=True, default=None,
              help="Package even when weights the mode targets stay in float (a warning instead of an error).")
@click.option("--max-accuracy-drop", type=float, default=None, metavar="POINTS",
              help="Budget: accuracy lost against the --eval labels, in points (1.0 = one percentage point). "
                   "Searches for the smallest recipe that meets every budget (docs/BUDGET.md).")
@click.option("--min-agreement", type=float, default=None, metavar="FRACTION",
              help="Budget: top-1 agreement with the original model on --eval (no labels needed), e.g. 0.99.")
@click.option("--min-cosine", type=float, default=None, metavar="VALUE",
              help="Budget: cosine similarity of the outputs with the original's on --eval, worst sample, e.g. 0.99.")
@click.option("--max-bytes", default=None, metavar="SIZE",
              help="Budget: the bundle file's size (bytes, or 500k, 1.5M, 2MiB).")
@click.option("--max-memory-mb", type=float, default=None, metavar="MB",
              help="Budget: peak RSS of a fresh process loading and running the bundle, measured on this machine.")
@click.option("--max-latency-ms", type=float, default=None, metavar="MS",
              help="Budget: median latency of one run of the first --eval sample, measured on this machine.")
@click.option("--max-trials", type=click.IntRange(1), default=None, help="Recipes the search tries at most (24).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: only when stderr is a terminal).")
@shape_option
@fidelity_options
@click.option("--layout", type=click.Choice(["compressed", "mapped"]), default=None,
              help="compressed: every tensor coded (smallest). mapped: large initializers stored raw and "
                   "page-aligned, which onnxruntime maps in place (faster load, less memory, bigger file). "
                   "Default: the profile's codec.layout.")
def package_cmd(model: str, output: str, target: str | None, level: int | None, example_path: str | None,
                trust_pickle: bool, rtol: float | None, atol: float | None, prune: str | None,
                prune_scope: str | None, prune_criterion: str | None, prune_round_to: int | None,
                reconstruct: bool | None, quantize: str | None, calibration: str | None, eval_data: str | None,
                op_types: str | None, exclude_nodes: str | None, max_accuracy_drop: float | None,
                min_agreement: float | None, min_cosine: float | None, max_bytes: str | None,
                max_memory_mb: float | None, max_latency_ms: float | None, max_trials: int | None,
                progress: bool | None, shapes: tuple[str, ...], layout: str | None,
                **quantize_options: Any) -> None:
    """Package MODEL (.onnx; .pt2 from torch.export.save; scikit-learn .joblib/.pkl with --trust-pickle) into
    a bundle for one target device."""
    from edgepack.runtime.paths import check_output

    check_output(output, [model, calibration, eval_data, example_path])  # before minutes of work, not after
    from edgepack.packager import package
    from edgepack.packager.quantize.describe import report_lines

    example = _load_npz(example_path, "example inputs") if example_path else None
    if example is not None:
        example.pop("labels", None)  # as in `run --inputs`: labels may sit beside the samples
    convert = {"trust_pickle": True} if trust_pickle else {}
    convert.update({k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None})
    more_budget, output_kinds = take(quantize_options)
    quantize_options.update(op_types=_names(op_types), exclude_nodes=_names(exclude_nodes))
    budget = {"max_accuracy_drop": max_accuracy_drop, "min_agreement": min_agreement, "min_cosine": min_cosine,
              "max_bytes": parse_size(max_bytes), "max_memory_mb": max_memory_mb, "max_latency_ms": max_latency_ms,
              "max_trials": max_trials, **more_budget}
    result = package(model, output=output, target=target, level=level, example_inputs=example, convert=convert,
                     prune=prune, prune_scope=prune_scope, prune_criterion=prune_criterion,
                     prune_round_to=prune_round_to, reconstruct=bool(reconstruct), quantize=quantize,
                     calibration=calibration, eval_data=eval_data, quantize_options=quantize_options,
                     budget={k: v for k, v in budget.items() if v is not None}, progress=progress,
                     shapes=shapes_of(shapes), output_kinds=output_kinds, layout=layout)
    from edgepack.packager.search.describe import search_lines

    for line in search_lines(result.report.get("search"), result.report.get("search_timing")):
        click.echo(line)
    for line in prune_summary(result.report.get("prune")):
        click.echo(line)
    click.echo(f"wrote {result.path}: {result.bundle_bytes:,} bytes, {result.ratio:.3f}x the "
               f"{result.source_bytes:,}-byte source, for {result.target}")
    check = result.report.get("import", {}).get("check")
    if check:
        exact = f"; {', '.join(check['exact'])} identical" if check["exact"] else ""
        click.echo(f"checked the ONNX conversion on {check['samples']} samples: max |diff| "
                   f"{check['max_abs_diff']:.3g} (tolerance {check['atol']:g} + {check['rtol']:g} x |source|){exact}")
    for line in report_lines(result.report):
        click.echo(line)
    for warning in result.report.get("warnings", []):
        click.echo(f"edgepack: warning: {warning}", err=True)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str | None) -> int | None:
    """`300000`, `300k`, `1.5M`, `2MiB` -> bytes (k, M, G: powers of 1000; KiB, MiB, GiB: of 1024)."""
    if text is None:
        return None
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        from edgepack.runtime.errors import OptionError

        raise OptionError(f"--max-bytes {text!r}: give a size such as 300000, 300k, 1.5M or 2MiB")
    return int(round(float(match.group(1)) * _SIZE_UNITS[unit]))


def prune_summary(report: dict[str, Any] | None, layers: int | None = 0) -> list[str]:
    from edgepack.packager.prune.summary import summary_lines

    return summary_lines(report, layers)


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
    """Run BUNDLE once and print its outputs' shapes and first values."""
    import numpy as np

    from edgepack.packager.writer import write_atomic
    from edgepack.runtime import load

    feeds, given = run_inputs(bundle, inputs_path, output_path, shapes)  # every path checked before any work
    outputs = run_once(load(bundle, target=target, force=force, public_key=public_key), feeds, given, timeout)
    for name, value in outputs.items():
        flat = np.asarray(value).ravel()
        click.echo(f"{name}: {value.dtype}{list(value.shape)} {np.array2string(flat[:6], precision=4)}"
                   f"{' ...' if flat.size > 6 else ''}")
    if output_path:
        import io

        buf = io.BytesIO()
        np.savez(buf, **outputs)
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
@shape_option
def measure_cmd(bundle: str, baseline: str | None, runs: int, inputs_path: str | None, repeat: int,
                target: str | None, force: bool, lean: bool | None, as_json: bool, shapes: tuple[str, ...]) -> None:
    """Measure what BUNDLE costs on this device, in fresh processes: bundle bytes, time to first inference,
    peak and steady RSS, latency percentiles, throughput, and whether it fits the profile's memory budget."""
    from edgepack.runtime.costs import lines, measure
    from edgepack.runtime.llm_measure import is_language_model

    if is_language_model(bundle) and baseline is None:
        return cli_llm.measure_lm(bundle, repeat, as_json)
    report = measure(bundle, baseline, runs=runs, inputs=inputs_path, repeat=repeat, target=target, force=force,
                     lean=lean, progress=_progress, shapes=shapes_of(shapes))
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for line in lines(report):
            click.echo(line)


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
        return inspect_delta(bundle, as_json)

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


# --- verify --------------------------------------------------------------------------------------------

@cli.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Also require a valid signature by this key (a .pub file from keygen).")
def verify_cmd(bundle: str, public_key: str | None) -> None:
    """Check every tensor's SHA-256, the padding and the file's structure (and the signature, with a key)."""
    from edgepack.runtime import open_bundle

    with open_bundle(bundle, public_key=public_key) as b:
        problems = b.verify()
        n, raw, signer = len(b.manifest.tensors), b.manifest.raw_bytes, b.signer
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EdgepackError(problems[0] + more)
    signed = (f", signed by key {signer}" if public_key else
              f" (signed by key {signer}: pass --public-key to check the signature)" if signer else "")
    click.echo(f"ok: {bundle}: graph and {n} tensors, {raw:,} bytes, every SHA-256 matches{signed}")


# --- keys and signatures -------------------------------------------------------------------------------

@cli.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace PATH and PATH.pub if they exist.")
def keygen_cmd(path: str, force: bool) -> None:
    """Write a new Ed25519 key pair: PATH (private, PEM, mode 0600) and PATH.pub (public, PEM)."""
    from edgepack.packager.sign import keygen

    pair = keygen(path, overwrite=force)
    click.echo(f"wrote {pair.private_path} (private: keep it secret) and {pair.public_path} "
               f"(public: ship it with the runtime); key id {pair.key_id}")


@cli.command("sign")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False), help="Private key file (from keygen).")
def sign_cmd(bundle: str, key: str) -> None:
    """Verify BUNDLE, then sign it with KEY (rewrites the file atomically)."""
    from edgepack.packager.sign import sign_bundle

    signed = sign_bundle(bundle, key)
    click.echo(f"signed {signed.path} with key {signed.key_id} ({signed.bundle_bytes:,} bytes)")


cli.add_command(delta_cmd)
cli.add_command(apply_cmd)


# --- targets -------------------------------------------------------------------------------------------

@cli.group("targets", cls=_Group, invoke_without_command=True)
@click.pass_context
def targets_cmd(ctx: click.Context) -> None:
    """List the device profiles (`targets show NAME` prints one)."""
    if ctx.invoked_subcommand is None:
        from edgepack.runtime.profile import builtin_names, load_profile

        click.echo(f"{'name':<20} {'arch':<8} {'cores':>5} {'budget':>8}  {'providers':<28} description")
        for name in builtin_names():
            p = load_profile(name)
            providers = ",".join(x.replace("ExecutionProvider", "") for x in p.providers)
            budget = f"{p.memory.budget_mb} MB" if p.memory.budget_mb else "-"
            click.echo(f"{name:<20} {p.device.architecture:<8} {p.device.cores or '-':>5} {budget:>8}  "
                       f"{providers:<28} {p.description}")


@targets_cmd.command("show")
@click.argument("name")
def targets_show(name: str) -> None:
    """Print one profile (a name, or a profile file of your own) as JSON."""
    from edgepack.runtime.profile import load_profile

    click.echo(json.dumps(load_profile(name).to_dict(), indent=2))


@targets_cmd.command("detect")
@click.option("--json", "as_json", is_flag=True, help="Print the device as JSON.")
def targets_detect(as_json: bool) -> None:
    """Describe this device and how each profile matches it."""
    from edgepack.runtime.compat import closest, compare
    from edgepack.runtime.device import detect_with_onnxruntime
    from edgepack.runtime.profile import builtin_names, load_profile

    device = detect_with_onnxruntime()
    profiles = [load_profile(name) for name in builtin_names()]
    matches = {}
    for p in profiles:
        c = compare(p, device)
        matches[p.name] = {"refused": c.refusals, "differences": c.notes}
    best = closest(profiles, device)
    if as_json:
        click.echo(json.dumps({"device": device.to_dict(), "closest": best.name if best else None,
                               "targets": matches}, indent=1))
        return
    d = device.to_dict()
    features = d["features"]
    click.echo(f"this device: {d['architecture']}, {d['cpu'] or 'CPU unknown'}, {d['cores']} usable cores, "
               f"{d['memory_mb']} MB memory ({d['available_mb']} MB available)")
    click.echo(f"  features   {' '.join(features) if features is not None else 'unknown'}")
    click.echo(f"  providers  {', '.join(d['providers'])}")
    for name, m in matches.items():
        verdict = ("refused: " + "; ".join(m["refused"]) if m["refused"] else
                   "matches" if not m["differences"] else "runs, differs: " + "; ".join(m["differences"]))
        click.echo(f"  {name:<20} {verdict}")
    click.echo(f"closest profile: {best.name if best else 'none'}")


# --- demo ----------------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Keep the bundle here.")
def demo_cmd(output: str | None) -> None:
    """Package the shipped digits model for this host, run it on real samples, report."""
    from edgepack.packager.demo import run_demo

    for line in run_demo(output).lines():
        click.echo(line)


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    """Warnings as one line each, like errors (the default format adds the file and source line)."""
    click.echo(f"edgepack: warning: {_one_line(message)}", err=True)


for _command in cli_llm.COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="edgepack")
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


register_model_commands(cli)

if __name__ == "__main__":
    sys.exit(main())
