"""package(): from a model to a bundle file, for one target device.

package() resolves its options into a pipeline.Job and runs the steps on it in order (pipeline.py); each step
it applies is recorded in the bundle's provenance with its options:

    import    read the model: ONNX (path or ModelProto), or PyTorch / scikit-learn through a converter
              (edgepack.packager.convert) checked against the source model's own outputs
    prune     remove channels and neurons, or zero small weights (edgepack.packager.prune), when asked
    quantize  int8-static, int8-dynamic, int4-weight or fp16 (edgepack.packager.quantize)
    fidelity  compare with the original on held-out samples (edgepack.packager.fidelity; report["fidelity"])
    encode    split graph and tensors, code each tensor losslessly, write the bundle atomically (bundle.py)

With a budget, the search (edgepack.packager.search) runs the prune and quantize steps many ways and returns
the steps of the recipe it chose, which package() applies in their place (budgeted.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgepack.runtime import profile as profile_mod
from edgepack.runtime.errors import OptionError
from edgepack.runtime.format import LAYOUTS
from edgepack.runtime.paths import check_output
from edgepack.runtime.profile import Profile
from edgepack.runtime.host import default_threads
from edgepack.runtime.malloc import pin_mmap_threshold

from . import modelfiles as files
from .bundle import PackageResult, check_storage, write_bundle
from .convert.options import ConvertOptions
from .dims import given_shapes
from .fidelity.kinds import parse as parse_kinds
from .options import build
from .pipeline import Encoding, Job, fidelity_step, finish, import_step, prune_step, quantize_step
from .progress import progress_setting
from .prune import step as prune_mod
from .prune.options import PruneOptions
from .quantize import QuantizeOptions, make_options, resolve
from .quantize.options import CALIBRATED_MODES
from .quantize.recipes import CHOSEN_BY
from .source import load_source

if TYPE_CHECKING:
    from .search import Budget


def package(model: Any, output: str | os.PathLike, target: str | os.PathLike | Profile | None = None, *,
            level: int | None = None, frame_bytes: int | None = None, threads: int | None = None,
            example_inputs: Any = None, convert: ConvertOptions | Mapping[str, Any] | None = None,
            prune: str | PruneOptions | Mapping[str, Any] | None = None, prune_scope: str | None = None,
            prune_criterion: str | None = None, prune_round_to: int | None = None, reconstruct: bool = False,
            quantize: str | QuantizeOptions | Mapping[str, Any] | None = None,
            calibration: str | os.PathLike | None = None, eval_data: Any = None,
            quantize_options: Mapping[str, Any] | None = None, budget: Budget | Mapping[str, Any] | None = None,
            progress: bool | None = None, shapes: dict[str, tuple[int, ...]] | None = None,
            output_kinds: dict[str, str] | list[str] | None = None, layout: str | None = None) -> PackageResult:
    """Package `model` for `target` into the bundle file `output`.

    model: a path to an .onnx file (external data beside it is read too) or a .pt2 ExportedProgram file, an
        onnx.ModelProto, a torch.nn.Module or torch.export.ExportedProgram, a fitted scikit-learn estimator or
        Pipeline, or a .joblib/.pkl file holding one (only with convert={"trust_pickle": True}).
    example_inputs: for a torch.nn.Module, a tensor or tuple of tensors (batch first) to export and check
        with; for scikit-learn, a 2-D array whose dtype sets the input type (default: float32 rows of
        n_features_in_ drawn for the check).
    convert: ConvertOptions or a dict of its fields (opset, dynamic_batch, input_names, output_names, rtol,
        atol, trust_pickle), for PyTorch and scikit-learn models.
    target: a profile name (`edgepack targets`), a profile file, or a Profile; default: this host's generic
        profile. The profile supplies the defaults below and is recorded in the bundle.
    level: zstd level (default: the profile's). frame_bytes: raw bytes per frame (default: the profile's).
    threads: encoding threads (default: one per core).
    Each step's options are given the same way: its options object (ConvertOptions, PruneOptions,
    QuantizeOptions, Budget) or a dict of its fields, checked before any work starts by the annotations of
    its fields (packager.options): an unknown key or a wrong type is an OptionError naming it.
    prune: a prune.PruneOptions, a dict of its fields (method, ratio, scope, criterion, reconstruct, ridge,
        max_layer_ratio, round_to), or the spec "channels:RATIO" / "unstructured:RATIO", which prune_scope
        ("layer" or "global"), prune_criterion ("l1", "l2" or "activation"), prune_round_to (keep a multiple
        of this many channels per layer) and reconstruct refine; with a PruneOptions or a dict they go inside.
    quantize: a quantize.QuantizeOptions, a dict of its fields (mode, method, per_channel, format,
        activation_type, weight_type, reduce_range, op_types, exclude_nodes, block_size, accuracy_level,
        symmetric, calibration_samples, int4_method, max_perplexity_increase, allow_unquantized, recipe), or a
        mode: "none", "int8-static", "int8-dynamic", "int4-weight" or "fp16". Default "none", or with a budget
        (also when a dict leaves "mode" out) the target profile's preferred mode; fields left unset come from
        the target profile. int8-static measures its candidate formats on this host when it runs the target's
        kernels (quantize.recipes). calibration: samples (an .npz keyed by input name, or a folder of .npz
        feeds) for int8-static, fp16's overflow check, --reconstruct and the activation criterion; eval_data:
        held-out samples the packaged model is compared with the original on (an array named `labels` gives
        accuracy).
    quantize_options: the same fields as a dict beside a mode string (as the CLI gives them); not with a
        QuantizeOptions or dict in quantize.
    budget: a search.Budget or a dict of its fields (max_accuracy_drop, min_agreement, min_cosine, max_bytes,
        max_memory_mb, max_latency_ms, max_trials): search for the smallest recipe that meets it, starting
        from the most aggressive one (docs/BUDGET.md); needs eval_data. Raises BudgetNotMet when no recipe
        does, and writes nothing.
    progress: progress bars on stderr for calibration and the search (default: when stderr is a terminal).
    shapes: input name -> shape of the random probes made when no samples are given (dynamic dimensions
        otherwise 1), e.g. {"images": (1, 3, 640, 640)}.
    output_kinds: {output name: "class[:AXIS]" | "regression" | "ignore"} (or ["NAME=KIND", ...]): which
        fidelity figures each output gets (fidelity.kinds; default: guessed from its shape and name).
    layout: "compressed" or "mapped" (default: the profile's codec.layout): mapped stores initializers of at
        least codec.mapped_min_bytes raw at offsets aligned to codec.mapped_alignment, for onnxruntime to map
        in place; bigger bundle, faster load, less memory (docs/FORMAT.md "Layouts", docs/PERFORMANCE.md).
    """
    from .search import check_usable, make_budget

    if output is None:
        raise OptionError("output: give the path of the bundle to write")
    check_output(output, [model, calibration, eval_data, example_inputs], "output")
    profile = profile_mod.resolve(target)
    if layout is not None:
        if layout not in LAYOUTS:
            raise OptionError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        profile = dataclasses.replace(profile, codec=dataclasses.replace(profile.codec, layout=layout))
    level = profile.codec.level if level is None else level
    frame_bytes = profile.codec.frame_bytes if frame_bytes is None else frame_bytes
    if not 1 <= level <= 22:
        raise OptionError(f"level must be between 1 and 22, got {level}")
    if not 4096 <= frame_bytes <= 16 * 1024 * 1024:
        raise OptionError(f"frame_bytes must be between 4096 and 16777216, got {frame_bytes}")
    budget = make_budget(budget)
    check_usable(budget, eval_data)
    prune_options = prune_mod.options_from(prune, prune_scope, prune_criterion, reconstruct, prune_round_to)
    preferred = profile.quantization.preferred if budget.active else "none"
    if quantize is None:
        quantize = preferred
    elif isinstance(quantize, Mapping) and quantize.get("mode") is None:
        quantize = {**quantize, "mode": preferred}
    qopts = make_options(quantize, **(quantize_options or {}))
    widen = qopts.op_types is None
    quantize_uses = qopts.mode in CALIBRATED_MODES
    prune_uses = (prune_options is not None and prune_options.needs_samples) or \
        (budget.max_bytes is not None and prune_options is None)   # the search may prune, and refit on them
    if calibration is not None and not (quantize_uses or prune_uses):
        raise OptionError(f"--calibration is not used by this recipe: it serves --quantize "
                          f"{' or '.join(CALIBRATED_MODES)}, --reconstruct and --prune-criterion activation")
    if quantize_uses and calibration is not None:
        qopts = dataclasses.replace(qopts, calibration=os.fspath(calibration))
    if budget.active and qopts.mode == "int8-static" and not qopts.calibration:
        raise OptionError(f"the budget search starts from {qopts.mode} (the {profile.name} profile's preferred mode "
                          "unless --quantize says otherwise), which needs --calibration DATA; or give --quantize "
                          "int8-dynamic")
    explicit = {k: getattr(qopts, k) for k in CHOSEN_BY if getattr(qopts, k) is not None}
    qopts = resolve(qopts, profile)
    kinds = parse_kinds(output_kinds)
    options = dataclasses.asdict(build(ConvertOptions, convert))
    # Freed weight-sized buffers (model copies, sessions) go back to the system instead of staying in glibc's
    # heap (runtime/malloc.py; measured on a 92 MB language model: 928 -> 851 MB peak for --quantize none).
    pin_mmap_threshold()
    source = load_source(model, example_inputs=example_inputs, **options)
    encoding = Encoding(level, frame_bytes, threads or default_threads())
    with files.workdir() as folder, given_shapes(source.model, shapes), progress_setting(progress):
        job = Job(source, profile, encoding, progress, kinds or {}, explicit, prune_options, qopts,
                  calibration, eval_data)
        job.run(import_step)
        if budget.active:
            from .budgeted import package_to_budget

            return package_to_budget(job, budget, widen, output, folder)
        job.run(prune_step, quantize_step, fidelity_step)
        return finish(job, output)


__all__ = ["package", "PackageResult", "write_bundle", "check_storage"]
