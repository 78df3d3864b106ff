"""package(): from a model to a bundle file, for one target device.

The steps run in order, and each one it applies is recorded in the bundle's provenance with its options:

    import    read the model: ONNX (path or ModelProto), or PyTorch / scikit-learn through a converter
              (edgepack.packager.convert) checked against the source model's own outputs
    prune     remove channels and neurons, or zero small weights (edgepack.packager.prune), when asked
    quantize  int8-static, int8-dynamic, int4-weight or fp16 (edgepack.packager.quantize), then compared
              with the original on held-out samples (report["fidelity"])
    encode    split graph and tensors, code each tensor losslessly, write the bundle atomically
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import onnx

import edgepack
from edgepack.packager.errors import BudgetNotMet
from edgepack.runtime import profile as profile_mod
from edgepack.runtime.compat import TargetWarning
from edgepack.runtime.errors import OptionError
from edgepack.runtime.feeds import RECORDED
from edgepack.runtime.format import BINDING_MAPPED, LAYOUT_MAPPED, LAYOUTS, Codec
from edgepack.runtime.paths import check_output
from edgepack.runtime.profile import Profile
from edgepack.runtime.host import default_threads

from . import modelfiles as files
from .convert.options import ConvertOptions
from .dims import dynamic_inputs, given_shapes, sample_shapes
from .encode import Encoded, encode
from .layers import layer_sizes, named_copy
from .progress import phase, progress_setting
from .prune import step as prune_mod
from .quantize import make_options, quantize_model, resolve
from .quantize.kinds import OutputKind
from .quantize.kinds import parse as parse_kinds
from .quantize.options import CALIBRATED_MODES
from .quantize.recipes import CHOSEN_BY, quantize_measured
from .skeleton import Split, split_model
from .source import Source, load_source
from .writer import BundleWriter, write_atomic

if TYPE_CHECKING:
    from .search import Budget


@dataclass
class PackageResult:
    """What package() wrote, and what it cost."""

    path: str
    bundle_bytes: int
    source_bytes: int
    raw_bytes: int
    target: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Bundle bytes over source model bytes."""
        return self.bundle_bytes / self.source_bytes if self.source_bytes else float("nan")


def _encode_all(split: Split, level: int, frame_bytes: int, threads: int):
    """Yield (tensor or None for the graph, Encoded) in bundle order, encoding ahead on `threads` threads."""
    items = [None, *split.tensors]
    with ThreadPoolExecutor(threads) as tensor_pool, ThreadPoolExecutor(threads) as frame_pool:
        def job(item):
            if item is None:
                return encode(memoryview(split.skeleton), "uint8", level, frame_bytes, pool=frame_pool)
            codecs = [Codec.RAW] if item.binding == BINDING_MAPPED else None  # mapped: used in place, raw
            return encode(item.data, item.dtype, level, frame_bytes, codecs, pool=frame_pool)

        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append((item, tensor_pool.submit(job, item)))
            if len(pending) >= 2 * threads:
                break
        while pending:
            item, fut = pending.popleft()
            yield item, fut.result()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append((nxt, tensor_pool.submit(job, nxt)))


_END = object()


def _codec_counts(encoded: list[Encoded]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in encoded:
        counts[e.codec] = counts.get(e.codec, 0) + 1
    return dict(sorted(counts.items()))


def write_bundle(source: Source, model: onnx.ModelProto, output: str | os.PathLike, profile: Profile,
                 steps: list[dict[str, Any]], report: dict[str, Any], level: int, frame_bytes: int,
                 threads: int) -> PackageResult:
    """Split, encode and write `model`; `steps` and `report` come from the steps that ran before. The profile's
    codec.layout says how: `mapped` stores large initializers raw at page-aligned offsets (docs/FORMAT.md)."""
    mapped = profile.codec.layout == LAYOUT_MAPPED
    split = split_model(model, profile.codec.mapped_min_bytes if mapped else None)
    page = profile.codec.mapped_alignment if mapped else None
    encoded_all: list[Encoded] = []
    with BundleWriter(output) as writer:
        for tensor, enc in _encode_all(split, level, frame_bytes, threads):
            encoded_all.append(enc)
            if tensor is None:
                writer.add_graph(enc)
            else:
                writer.add_tensor(tensor.name, tensor.dtype, tensor.shape, enc, tensor.binding, tensor.splice,
                                  page if tensor.binding == BINDING_MAPPED else None)
        raw = sum(e.raw_length for e in encoded_all)
        stored = sum(e.length for e in encoded_all)
        steps = [*steps, {"name": "encode", "options": {"level": level, "frame_bytes": frame_bytes}}]
        provenance = {
            "source": {"name": source.name, "kind": source.kind, "sha256": source.sha256, "bytes": source.size},
            "edgepack_version": edgepack.__version__,
            "steps": steps,
        }
        report = {**report, "lossless": {"tensors": len(split.tensors), "raw_bytes": raw, "stored_bytes": stored,
                                         "codecs": _codec_counts(encoded_all[1:])}}
        layout = {"name": LAYOUT_MAPPED, "alignment": page} if mapped else None
        size = writer.finish(target=profile.to_dict(), provenance=provenance, report=report, layout=layout)
    return PackageResult(os.fspath(output), size, source.size, raw, profile.name, report)


def package(model: Any, output: str | os.PathLike, target: "str | os.PathLike | Profile | None" = None, *,
            level: int | None = None, frame_bytes: int | None = None, threads: int | None = None,
            example_inputs: Any = None, convert: "ConvertOptions | dict[str, Any] | None" = None,
            prune: Any = None, prune_scope: str | None = None, prune_criterion: str | None = None,
            prune_round_to: int | None = None, reconstruct: bool = False, quantize: Any = None,
            calibration: str | os.PathLike | None = None, eval_data: Any = None,
            quantize_options: "dict[str, Any] | None" = None, budget: "Budget | dict[str, Any] | None" = None,
            progress: bool | None = None, shapes: "dict[str, tuple[int, ...]] | None" = None,
            output_kinds: "dict[str, str] | list[str] | None" = None, layout: str | None = None) -> PackageResult:
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
    prune: "channels:RATIO", "unstructured:RATIO" or a prune.PruneOptions; prune_scope ("layer" or "global"),
        prune_criterion ("l1", "l2" or "activation"), prune_round_to (keep a multiple of this many channels
        per layer) and reconstruct refine a spec string.
    quantize: "none", "int8-static", "int8-dynamic", "int4-weight" or "fp16" (or a QuantizeOptions); default
        "none", or with a budget the target profile's preferred mode. calibration: samples (an .npz keyed by
        input name, or a folder of .npz feeds) for int8-static, fp16's overflow check, --reconstruct and the
        activation criterion; eval_data: held-out samples the packaged model is compared with the original on
        (an array named `labels` gives accuracy).
    quantize_options: a dict of QuantizeOptions fields (method, per_channel, format, activation_type,
        weight_type, reduce_range, op_types, exclude_nodes, block_size, accuracy_level, symmetric,
        calibration_samples, allow_unquantized, recipe); unset ones come from the target profile. int8-static
        measures its candidate formats on this host when it runs the target's kernels (quantize.recipes).
    budget: a search.Budget or a dict of its fields (max_accuracy_drop, min_agreement, min_cosine, max_bytes,
        max_memory_mb, max_latency_ms, max_trials): search for the smallest recipe that meets it, starting
        from the most aggressive one (docs/BUDGET.md); needs eval_data. Raises BudgetNotMet when no recipe
        does, and writes nothing.
    progress: progress bars on stderr for calibration and the search (default: when stderr is a terminal).
    shapes: input name -> shape of the random probes made when no samples are given (dynamic dimensions
        otherwise 1), e.g. {"images": (1, 3, 640, 640)}.
    output_kinds: {output name: "class[:AXIS]" | "regression" | "ignore"} (or ["NAME=KIND", ...]): which
        fidelity figures each output gets (quantize.kinds; default: guessed from its shape and name).
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
    if quantize is None:
        quantize = profile.quantization.preferred if budget.active else "none"
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
    options = dataclasses.asdict(ConvertOptions.from_mapping(convert))
    source = load_source(model, example_inputs=example_inputs, **options)
    encoding = (level, frame_bytes, threads or default_threads())
    with files.workdir() as folder, given_shapes(source.model, shapes), progress_setting(progress):
        job = _Job(source, profile, encoding, progress, kinds, explicit)
        if budget.active:
            return _to_budget(job, budget, qopts, widen, prune_options, calibration, eval_data, output, folder)
        job.transform(prune_options, qopts, calibration)
        return job.finish(eval_data, output)


class _Job:
    """One package() call's model, steps and report, as the steps run."""

    def __init__(self, source: Source, profile: Profile, encoding: tuple[int, int, int], progress: bool | None,
                 kinds: dict[str, OutputKind] | None = None, explicit: dict[str, Any] | None = None):
        self.source, self.profile, self.encoding, self.progress = source, profile, encoding, progress
        self.kinds, self.explicit = kinds or {}, explicit or {}
        self.steps: list[dict[str, Any]] = [{"name": "import", "options": {"kind": source.kind, **source.options}}]
        self.report: dict[str, Any] = {"import": {"check": source.options["check"]}} \
            if "check" in source.options else {}
        if source.llm is not None:
            self.report["llm"] = source.llm
        self.model, self.packaged_profile, self.calibration_samples = source.model, profile, None
        self.quantized = False

    @functools.cached_property
    def named_source(self) -> onnx.ModelProto:
        """The source model with every node named (layers.named_copy), made once: the prune and quantize steps,
        the search and the per-layer record all read it, and none modifies it."""
        return named_copy(self.source.model)

    def write(self, model: onnx.ModelProto, steps: list, report: dict, path: str) -> int:
        """A bundle of `model` with the import step and report plus these, for sizing a search's trial."""
        level, frame_bytes, threads = self.encoding
        return write_bundle(self.source, model, path, self.profile, [*self.steps, *steps], {**self.report, **report},
                            level, frame_bytes, threads).bundle_bytes

    def transform(self, prune_options: Any, qopts: Any, calibration: Any, plan: Any = None) -> None:
        """Prune and quantize as asked, or as the search `plan` chose (its model pruned and prepared once)."""
        named = self.named_source if prune_options is not None or qopts.active or plan else None
        packaged = named
        if plan is not None:
            packaged = plan.bench.model
            if plan.bench.prune:
                self.steps.append(plan.bench.prune[0])
                self.report["prune"] = plan.bench.prune[1]
        elif prune_options is not None:
            packaged, step, self.report["prune"] = prune_mod.prune_step(named, prune_options, calibration)
            self.steps.append(step)
        if plan is not None and plan.quantize is not None:
            with phase(f"quantizing ({plan.quantize.mode})"):
                q = quantize_model(packaged, plan.quantize, self.profile, prepared=plan.bench.prepared)
        elif plan is None and qopts.active and self.source.llm is not None:
            from .quantize.lm_step import quantize_language_model

            with phase(f"quantizing the language model ({qopts.mode})"):
                q = quantize_language_model(packaged, qopts, self.profile, self.source.llm)
        elif plan is None and qopts.mode == "int8-static":
            with phase("calibrating, quantizing and measuring the int8 formats"):
                q = quantize_measured(packaged, qopts, self.profile, self.explicit, kinds=self.kinds)
        elif plan is None and qopts.active:
            label = "calibrating and quantizing" if qopts.mode == "int8-static" else "quantizing"
            with phase(f"{label} ({qopts.mode})"):
                q = quantize_model(packaged, qopts, self.profile)
        else:
            q = None
        if q is not None:
            packaged, self.packaged_profile, self.calibration_samples = q.model, q.profile, q.calibration
            self.report["quantization"], self.report["warnings"] = q.report, q.warnings
            self.steps.append(q.step)
            self.quantized = True
        self.model = packaged if packaged is not None else self.source.model

    def sample_shapes(self, eval_data: Any) -> dict[str, list[int]]:
        """Input shapes from the calibration or eval data (or --shape), for inputs with dynamic dimensions."""
        feeds = self.calibration_samples.feeds[0] if self.calibration_samples else None
        if feeds is None and isinstance(eval_data, (str, os.PathLike)) and dynamic_inputs(self.source.model):
            from .quantize.samples import load_for

            feeds = load_for(self.source.model, os.fspath(eval_data), "eval data", limit=1).feeds[0]
        return sample_shapes(self.source.model, feeds)

    def finish(self, eval_data: Any, output: Any, shown_as: Any = None) -> PackageResult:
        """Compare with the original, record the layers, write the bundle (atomically), warn; `shown_as`: the
        path warnings name, when `output` is a staging file."""
        speed: dict[str, Any] = {}
        if (self.quantized and self.source.llm is None) or eval_data is not None:
            from .quantize.verify import check

            with phase("comparing with the original"):
                fidelity, speed, warned = check(self.source.model, self.model, eval_data, self.calibration_samples,
                                                self.profile, self.packaged_profile, self.kinds)
            self.report["fidelity"] = fidelity
            self.report["warnings"] = self.report.get("warnings", []) + warned
        shapes = self.sample_shapes(eval_data)
        if shapes:
            self.report[RECORDED] = shapes
        if self.model is not self.source.model:
            self.report["layers"] = layer_sizes(self.named_source, self.model)
        level, frame_bytes, threads = self.encoding
        result = write_bundle(self.source, self.model, output, self.packaged_profile, self.steps, self.report,
                              level, frame_bytes, threads)
        result.path = os.fspath(shown_as or output)
        check_storage(result, self.packaged_profile)
        if speed:  # timings differ from run to run: reported to the caller, kept out of the (deterministic) bundle
            from .quantize.verify import speed_warning

            result.report = {**result.report, "speed": speed,
                             "warnings": result.report.get("warnings", []) + speed_warning(speed)}
        return result


def _to_budget(job: _Job, budget: Any, qopts: Any, widen: bool, prune_options: Any, calibration: Any,
               eval_data: Any, output: Any, folder: str) -> PackageResult:
    """Search for the recipe (search.run), build it, check it, and write it only if it meets the budget."""
    from .datasets import Samples
    from .quantize.samples import load_for
    from .search import Inputs, search
    from .search.budget import FIDELITY, describe_miss
    from .search.evaluate import summarize
    from .search.formats import choose_for_search

    samples: Samples = load_for(job.source.model, os.fspath(eval_data), "eval data")
    qopts, choice, speed = choose_for_search(job.named_source, qopts, widen, budget, job.profile, job.explicit,
                                             job.kinds, folder, job.progress)
    inputs = Inputs(job.named_source, budget, qopts if qopts.active else None, widen, prune_options,
                    os.fspath(calibration) if calibration is not None else None, samples, job.profile, job.write,
                    job.progress, job.kinds, choice.prepared if choice else None, speed)
    try:
        plan = search(inputs, folder)
    except BudgetNotMet as e:
        raise BudgetNotMet(f"{e}; nothing was written to {os.fspath(output)}", e.best, e.misses, e.trials) from None
    job.steps.append({"name": "search", "options": {**budget.record(), "chosen_trial": plan.trial.index}})
    job.report["search"] = plan.report
    job.transform(None, qopts, calibration, plan)
    if choice is not None and "quantization" in job.report:
        job.report["quantization"].update(recipe=choice.record, **({"candidates": choice.candidates}
                                                                   if choice.candidates else {}))
    staged = os.path.join(folder, "final.edgepack")
    result = job.finish(eval_data, staged, shown_as=output)
    final = {**summarize(result.report["fidelity"]["outputs"]), "bytes": result.bundle_bytes}
    misses = budget.misses(final, only=(*FIDELITY, "max_bytes"))
    if misses:  # the trial met them: only the final report's extra bytes or a lowered optimization level can
        raise BudgetNotMet(f"the chosen recipe (trial {plan.trial.index}) misses the budget once packaged: "
                           f"{'; '.join(describe_miss(k, v) for k, v in misses.items())}; nothing was written to "
                           f"{os.fspath(output)}", plan.trial.record(), misses, plan.report["trials"])
    write_atomic(output, _chunks(staged))
    result.report = {**result.report, "search_timing": plan.timing}
    return result


def _chunks(path: str, size: int = 1 << 20):
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def check_storage(result: PackageResult, profile: Profile) -> None:
    """Warn when the bundle is larger than the storage the target profile budgets for bundles."""
    budget = profile.memory.storage_mb
    if budget is not None and result.bundle_bytes > budget * 2**20:
        warnings.warn(f"{result.path} is {result.bundle_bytes / 2**20:.1f} MB, over the {budget} MB of storage "
                      f"target {profile.name!r} budgets for bundles (memory.storage_mb)", TargetWarning,
                      stacklevel=3)


__all__ = ["package", "PackageResult", "write_bundle", "check_storage"]
