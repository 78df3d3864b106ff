"""`edgepack package` (a model into a bundle) and `edgepack demo`: thin wrappers over edgepack.packager.package
and edgepack.packager.demo. Registered on the main group by cli.py."""

from __future__ import annotations

from typing import Any

import click

from edgepack.runtime.text import counted

from .cli_fidelity import fidelity_options, take
from .cli_options import load_npz as _load_npz
from .cli_options import shape_option, shapes_of


# --- package -------------------------------------------------------------------------------------------

def _names(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


_QUANT_MODES = ["none", "int8-static", "int8-dynamic", "int4-weight", "fp16"]


@click.command("package")
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
    convert: dict[str, Any] = {"trust_pickle": True} if trust_pickle else {}
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
        click.echo(f"checked the ONNX conversion on {counted(check['samples'], 'sample')}: max |diff| "
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



# --- demo ----------------------------------------------------------------------------------------------

@click.command("demo")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Keep the bundle here.")
def demo_cmd(output: str | None) -> None:
    """Package the shipped digits model for this host, run it on real samples, report."""
    from edgepack.packager.demo import run_demo

    for line in run_demo(output).lines():
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(package_cmd)
    group.add_command(demo_cmd)
