"""The packager's pipeline: steps with one contract, run in order by package() (api.py).

    import    read the model (source.py): ONNX, or PyTorch / scikit-learn through a converter
    prune     remove channels and neurons, or zero small weights (prune/), when asked
    quantize  int8-static, int8-dynamic, int4-weight or fp16 (quantize/)
    fidelity  compare the packaged model with the original on held-out samples (fidelity/)
    encode    split, code and write the bundle (bundle.py), from what the steps before recorded

Each step is `step(model, job) -> StepResult`: the model it leaves, its record in the bundle's provenance (None
when it did nothing) and the sections it adds to the report (report_keys.py names them). `Job` holds what
package() resolved (source, target, options) and what the steps so far have built; `Job.apply` takes one
step's result in. The budget search (search/) runs the prune and quantize steps many ways and hands back the
steps of the recipe it chose.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import onnx

from edgepack.runtime.feeds import RECORDED
from edgepack.runtime.profile import Profile

from . import report_keys as keys
from .bundle import PackageResult, check_storage, write_bundle
from .datasets import Samples
from .dims import dynamic_inputs, sample_shapes
from .fidelity.kinds import OutputKind
from .layers import layer_sizes, named_copy
from .progress import phase
from .prune import step as prune_mod
from .prune.options import PruneOptions
from .quantize import quantize_model
from .quantize.options import QuantizeOptions
from .quantize.recipes import quantize_measured
from .source import Source

Record = dict[str, Any]   # one step's entry in provenance["steps"]: {"name": ..., "options": {...}}


@dataclass
class StepResult:
    """What one step did: the model it leaves, its provenance record (None: it did nothing), its report
    sections; the quantize step also gives the profile the model runs with and the samples it calibrated on,
    and the fidelity step timings, which differ from run to run and stay out of the bundle."""

    model: onnx.ModelProto
    provenance: Record | None = None
    report: dict[str, Any] = field(default_factory=dict)
    profile: Profile | None = None
    samples: Samples | None = None
    timings: dict[str, Any] = field(default_factory=dict)


# the contract every step meets: the model the steps before left, the job -> what this step did
Step = Callable[[onnx.ModelProto, "Job"], StepResult]


@dataclass
class Encoding:
    """How the encode step codes tensors: zstd level, raw bytes per frame, encoding threads."""

    level: int
    frame_bytes: int
    threads: int


@dataclass
class Job:
    """One package() call: what it resolved, and the model, provenance and report as the steps leave them."""

    source: Source
    profile: Profile
    encoding: Encoding
    progress: bool | None = None
    kinds: dict[str, OutputKind] = field(default_factory=dict)
    explicit: dict[str, Any] = field(default_factory=dict)   # quantize options the caller set (recipes.CHOSEN_BY)
    prune: PruneOptions | None = None
    quantize: QuantizeOptions | None = None
    calibration: str | os.PathLike | None = None
    eval_data: Any = None
    # built as the steps run
    model: onnx.ModelProto | None = None
    steps: list[Record] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    packaged_profile: Profile | None = None
    samples: Samples | None = None
    quantized: bool = False
    timings: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def named_source(self) -> onnx.ModelProto:
        """The source model with every node named (layers.named_copy), made once: the prune and quantize steps,
        the search and the per-layer record all read it, and none modifies it."""
        return named_copy(self.source.model)

    def apply(self, result: StepResult) -> None:
        """Take one step's result in: its model, provenance record and report sections."""
        self.model = result.model
        if result.provenance is not None:
            self.steps.append(result.provenance)
        for key, section in result.report.items():   # in order: the manifest keeps the report's key order
            self.report[key] = [*self.report.get(key, []), *section] if key == keys.WARNINGS else section
        self.quantized = self.quantized or keys.QUANTIZATION in result.report
        if result.profile is not None:
            self.packaged_profile = result.profile
        if result.samples is not None:
            self.samples = result.samples
        self.timings.update(result.timings)

    def run(self, *steps: Step) -> None:
        """Run `steps` in order, each on the model the one before left."""
        for step in steps:
            self.apply(step(self.model if self.model is not None else self.source.model, self))


def import_step(model: onnx.ModelProto, job: Job) -> StepResult:
    """The model as read (and converted, and checked against its source's own outputs)."""
    source = job.source
    report: dict[str, Any] = {}
    if "check" in source.options:
        report[keys.IMPORT] = {"check": source.options["check"]}
    if source.llm is not None:
        report[keys.LLM] = source.llm
    return StepResult(source.model, {"name": "import", "options": {"kind": source.kind, **source.options}},
                      report)


def prune_step(model: onnx.ModelProto, job: Job) -> StepResult:
    """Prune as job.prune asks (nothing when it is None)."""
    if job.prune is None:
        return StepResult(model)
    pruned, record, report = prune_mod.prune_step(job.named_source, job.prune, job.calibration)
    return StepResult(pruned, record, {keys.PRUNE: report})


def quantize_step(model: onnx.ModelProto, job: Job) -> StepResult:
    """Quantize as job.quantize asks: a language model block by block, int8-static with its formats measured
    on this host, the other modes directly; nothing for mode "none"."""
    opts = job.quantize
    if opts is None or not opts.active:
        return StepResult(model)
    if model is job.source.model:
        model = job.named_source
    if job.source.llm is not None:
        from .quantize.lm_step import quantize_language_model

        with phase(f"quantizing the language model ({opts.mode})"):
            q = quantize_language_model(model, opts, job.profile, job.source.llm)
    elif opts.mode == "int8-static":
        with phase("calibrating, quantizing and measuring the int8 formats"):
            q = quantize_measured(model, opts, job.profile, job.explicit, kinds=job.kinds)
    else:
        with phase(f"quantizing ({opts.mode})"):
            q = quantize_model(model, opts, job.profile)
    return quantized(q)


def quantized(q: Any) -> StepResult:
    """The quantize step's result from a quantize.QuantizeResult."""
    return StepResult(q.model, q.step, {keys.QUANTIZATION: q.report, keys.WARNINGS: q.warnings}, q.profile,
                      q.calibration)


def fidelity_step(model: onnx.ModelProto, job: Job) -> StepResult:
    """Compare `model` with the original on the eval data (or held-out calibration samples, or random probes)
    when it was quantized or eval data was given; record the sample shapes and the per-layer sizes."""
    report: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    if (job.quantized and job.source.llm is None) or job.eval_data is not None:
        from .fidelity.check import check

        with phase("comparing with the original"):
            figures, timings, warned = check(job.source.model, model, job.eval_data, job.samples, job.profile,
                                             job.packaged_profile or job.profile, job.kinds, job.calibration)
        report[keys.FIDELITY] = figures
        report[keys.WARNINGS] = warned
    shapes = _sample_shapes(job)
    if shapes:
        report[RECORDED] = shapes
    if model is not job.source.model:
        report[keys.LAYERS] = layer_sizes(job.named_source, model)
    return StepResult(model, None, report, timings={keys.SPEED: timings} if timings else {})


def _sample_shapes(job: Job) -> dict[str, list[int]]:
    """Input shapes from the calibration or eval data (or --shape), for inputs with dynamic dimensions."""
    feeds = job.samples.feeds[0] if job.samples else None
    if feeds is None and isinstance(job.eval_data, (str, os.PathLike)) and dynamic_inputs(job.source.model):
        from .quantize.samples import load_for

        feeds = load_for(job.source.model, os.fspath(job.eval_data), "eval data", limit=1).feeds[0]
    return sample_shapes(job.source.model, feeds)


def finish(job: Job, output: str | os.PathLike, shown_as: str | os.PathLike | None = None) -> PackageResult:
    """The encode step: write the bundle of what the steps built (atomically), warn when it is larger than the
    target's storage; `shown_as`: the path warnings name, when `output` is a staging file."""
    assert job.model is not None
    packaged = job.packaged_profile or job.profile
    result = write_bundle(job.source, job.model, output, packaged, job.steps, job.report, job.encoding.level,
                          job.encoding.frame_bytes, job.encoding.threads)
    result.path = os.fspath(shown_as or output)
    check_storage(result, packaged)
    speed = job.timings.get(keys.SPEED)
    if speed:  # timings differ from run to run: reported to the caller, kept out of the (deterministic) bundle
        from .fidelity.check import speed_warning

        result.report = {**result.report, keys.SPEED: speed,
                         keys.WARNINGS: result.report.get(keys.WARNINGS, []) + speed_warning(speed)}
    return result


__all__ = ["Encoding", "Job", "Record", "Step", "StepResult", "fidelity_step", "finish", "import_step", "prune_step",
           "quantize_step", "quantized"]
