"""Quantization options: typed, checked before any work starts, defaults taken from the target profile.

`QuantizeOptions` is what the user asks for; fields left at None mean "the profile's or the mode's default".
`resolve()` fills them in from the profile and refuses what cannot work (an unknown key, an option the mode
does not use, int8-static without calibration data, a type pair onnxruntime cannot run), so that nothing is
loaded or quantized before a mistake is caught. The resolved options are recorded in the bundle's provenance.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from edgepack.runtime.errors import OptionError
from edgepack.runtime.profile import Profile

from ..options import Options, Path, build

Mode = Literal["none", "int8-static", "int8-dynamic", "int4-weight", "fp16"]
Method = Literal["minmax", "entropy", "percentile"]
Format = Literal["qdq", "qoperator"]
ActivationType = Literal["uint8", "int8"]
WeightType = Literal["int8", "uint8"]
Recipe = Literal["measure", "profile"]
Int4Method = Literal["gptq", "rtn"]

MODES: tuple[str, ...] = get_args(Mode)
METHODS: tuple[str, ...] = get_args(Method)
FORMATS: tuple[str, ...] = get_args(Format)
INT8_MODES = ("int8-static", "int8-dynamic")

# The op types quantized unless the user widens them. Static QDQ over every op type destroys some real models
# (a classifier fell to 12.5% top-1 agreement with its fp32 self) while the weight-carrying ops alone keep
# them; dynamic int8 convolutions run 3-6x slower than fp32 and dynamic LSTMs lose the output, so dynamic
# takes the matrix products and embedding tables only. See docs/QUANTIZATION.md.
DEFAULT_OP_TYPES: dict[str, tuple[str, ...]] = {
    "int8-static": ("Conv", "MatMul", "Gemm"),
    "int8-dynamic": ("MatMul", "Gemm", "Gather"),
    "int4-weight": ("MatMul", "Gemm", "Gather"),
    "fp16": (),
}
INT4_OP_TYPES = ("MatMul", "Gemm", "Gather")
# Exporters write linear layers on 2-D inputs as Gemm. The dynamic quantizer rewrites Gemm as MatMul + Add
# itself (and quantizes it as "MatMul"); the 4-bit one does not, so edgepack does (prepare.gemm_to_matmul).
GEMM_AS_MATMUL = ("int4-weight",)

# Which option belongs to which modes; giving one to another mode is a mistake, not a no-op.
# the modes that read --calibration samples (int4: language models' text, lm_data)
CALIBRATED_MODES = ("int8-static", "fp16", "int4-weight")
_USED_BY: dict[str, tuple[str, ...]] = {
    "calibration": CALIBRATED_MODES,
    "method": ("int8-static",),
    "calibration_samples": ("int8-static", "fp16"),
    "format": ("int8-static",),
    "recipe": ("int8-static",),
    "activation_type": ("int8-static",),
    "weight_type": INT8_MODES,
    "reduce_range": INT8_MODES,
    "per_channel": INT8_MODES,
    "op_types": ("int8-static", "int8-dynamic", "int4-weight"),
    "block_size": ("int4-weight",),
    "accuracy_level": ("int4-weight",),
    "symmetric": ("int4-weight",),
    "int4_method": ("int4-weight",),
    "max_perplexity_increase": ("int4-weight",),
}


@dataclass(frozen=True)
class QuantizeOptions(Options):
    """What to quantize and how; None means the target profile's (or the mode's) default."""

    mode: Mode = "none"
    calibration: Path | None = None          # .npz or folder of .npz (packager.datasets formats)
    method: Method | None = None             # calibration method; default minmax
    calibration_samples: int | None = None   # use at most this many calibration samples; default all
    format: Format | None = None             # static int8 format; default the profile's
    activation_type: ActivationType | None = None
    weight_type: WeightType | None = None
    reduce_range: bool | None = None         # 7-bit weights (x86 without VNNI)
    per_channel: bool | None = None
    op_types: tuple[str, ...] | None = None  # op types to quantize; default DEFAULT_OP_TYPES[mode]
    exclude_nodes: tuple[str, ...] = ()         # node names left in float, on purpose
    block_size: int | None = None            # int4: weights per scale (power of two, >= 16); default 32
    accuracy_level: int | None = None        # int4: MatMulNBits compute type; 4 (int8) is fast on CPUs
    symmetric: bool | None = None            # int4: symmetric blocks (no zero points); default False
    int4_method: Int4Method | None = None    # int4 for language models: "gptq" (default) or "rtn"
    max_perplexity_increase: float | None = None  # language models: % budget; sensitive MatMuls stay 8-bit
    allow_unquantized: bool = False             # keep going when weights the mode targets stay float
    recipe: Recipe | None = None             # int8-static: "measure" the formats on this host when it runs
    #                                             the target's kernels (the default), or take the "profile"'s

    WHAT: ClassVar[str] = "quantization"
    ACCEPTS: ClassVar[dict[str, str]] = {
        "calibration": "a path to an .npz file or a folder of them", "max_perplexity_increase": "a percentage >= 0",
        "block_size": "a power of two of at least 16", "accuracy_level": "0 to 4 (4: int8 compute, fastest on CPUs)",
        "calibration_samples": "at least 1"}

    @classmethod
    def option_name(cls, field: str) -> str:
        return field.replace("_", "-")  # as the flags spell them (most are --NAME)

    def _check(self) -> None:
        if self.block_size is not None and (self.block_size < 16 or self.block_size & (self.block_size - 1)):
            raise self.refuse("block_size")
        if self.accuracy_level is not None and self.accuracy_level not in (0, 1, 2, 3, 4):
            raise self.refuse("accuracy_level")
        if self.calibration_samples is not None and self.calibration_samples < 1:
            raise self.refuse("calibration_samples")
        if self.max_perplexity_increase is not None and self.max_perplexity_increase < 0:
            raise self.refuse("max_perplexity_increase")

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def record(self) -> dict[str, Any]:
        """The options as provenance records them: no folders (bundles are the same on every machine)."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
               if v is not None and v != ()}
        if self.calibration:
            out["calibration"] = os.path.basename(os.path.normpath(self.calibration))
        return out


def make_options(mode: str | QuantizeOptions | Mapping[str, Any] | None = None, **kw: Any) -> QuantizeOptions:
    """QuantizeOptions from a mode, a QuantizeOptions or a dict of its fields (with "mode"), plus option fields as
    keywords (the CLI's, None: not given); unknown keys and wrong types are refused by name (packager.options)."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if isinstance(mode, (QuantizeOptions, Mapping)):
        if kw:
            given = "as a QuantizeOptions" if isinstance(mode, QuantizeOptions) else "as a dict in quantize"
            raise OptionError(f"give quantization options either {given} or in quantize_options, not both")
        return build(QuantizeOptions, mode)
    return build(QuantizeOptions, {"mode": mode or "none", **kw})


def _check_mode_fit(opts: QuantizeOptions) -> None:
    for name, modes in _USED_BY.items():
        if getattr(opts, name) is not None and opts.mode not in modes:
            raise OptionError(f"{name.replace('_', '-')} does not apply to --quantize {opts.mode} (it is used by "
                              f"{', '.join(modes)}); drop it or pick one of those modes")
    if opts.mode == "int8-static" and not opts.calibration:
        raise OptionError("int8-static needs calibration data (--calibration DATA: an .npz of samples keyed by "
                          "input name, or a folder of .npz feeds); without data, use --quantize int8-dynamic")
    if opts.mode == "none" and (opts.exclude_nodes or opts.allow_unquantized):
        raise OptionError("exclude-nodes and allow-unquantized need a --quantize mode")


def _check_values(opts: QuantizeOptions) -> None:
    """What the resolved options (the profile's defaults filled in) must hold together."""
    if opts.activation_type == "int8" and opts.weight_type == "uint8":
        raise OptionError("onnxruntime cannot run int8 activations with uint8 weights; use weight-type int8")
    if opts.op_types is not None:
        if not opts.op_types:
            raise OptionError("op-types is empty: name at least one op type, or leave it out for the default")
        supported = supported_op_types(opts.mode)
        unknown = [t for t in opts.op_types if t not in supported]
        if unknown:
            raise OptionError(f"{opts.mode} cannot quantize op types {unknown}; it supports "
                              f"{', '.join(sorted(supported))}")


def supported_op_types(mode: str) -> set[str]:
    """Op types onnxruntime's quantizer for `mode` knows."""
    if mode == "int4-weight":
        return set(INT4_OP_TYPES)
    from onnxruntime.quantization import registry

    if mode == "int8-dynamic":
        return set(registry.IntegerOpsRegistry) | {"Gemm"}
    return set(registry.QDQRegistry) | set(registry.QLinearOpsRegistry)


def resolve(opts: QuantizeOptions, profile: Profile) -> QuantizeOptions:
    """Check `opts` and fill every default from `profile` and the mode, before anything is loaded."""
    _check_mode_fit(opts)
    if opts.calibration is not None and not os.path.exists(opts.calibration):
        raise OptionError(f"{opts.calibration}: no such calibration file or folder")
    q = profile.quantization
    mode = opts.mode
    filled: dict[str, Any] = {}
    if mode in INT8_MODES:
        filled.update(weight_type=q.weight_type, reduce_range=q.reduce_range, per_channel=q.per_channel)
    if mode == "int8-static":
        filled.update(method="minmax", format=q.format, activation_type=q.activation_type)
    if mode == "int4-weight":
        filled.update(block_size=32, accuracy_level=4, symmetric=False)
    if mode in DEFAULT_OP_TYPES and mode != "fp16":
        filled["op_types"] = DEFAULT_OP_TYPES[mode]
    resolved = dataclasses.replace(opts, **{k: v for k, v in filled.items() if getattr(opts, k) is None})
    if resolved.activation_type == "int8" and resolved.weight_type == "uint8" and opts.weight_type is None:
        resolved = dataclasses.replace(resolved, weight_type="int8")  # the profile's pair does not fit the user's
    _check_values(resolved)
    return resolved
