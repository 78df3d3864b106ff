"""Target profiles: one declarative JSON file per device in targets/, read with a strict typed schema.

Every field has a type, a default and a one-line description (the `doc` metadata). Unknown keys and wrong
types are errors that name the key, so a typo in a profile fails loudly instead of silently meaning the
default. The packager takes its defaults from a profile; the runtime applies its session options.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import TargetError
from .format import MAPPED_ALIGNMENTS
from .text import clip

MAX_THREADS = 256
MAX_INT = 1 << 53  # JSON's exact integers: ample for any count, MB or bytes a profile holds


def _f(default: Any, doc: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass(frozen=True)
class DeviceSpec:
    architecture: Literal["x86_64", "aarch64", "armv7l"] = _f("x86_64", "CPU architecture (platform.machine())")
    cpu: str = _f("generic", "CPU core (an ARM core name such as cortex-a72 is checked against the device's)")
    cpu_features: list[str] = _f([], "CPU features of the device, named as in /proc/cpuinfo; a device lacking "
                                     "one gets a warning")
    required_features: list[str] = _f([], "features the bundle's settings depend on, each a name or alternatives "
                                          "joined by '|': a CPU of this architecture lacking one is refused "
                                          "unless forced")
    cores: int | None = _f(None, "CPU cores of the device; null for any")


@dataclass(frozen=True)
class MemorySpec:
    ram_mb: int | None = _f(None, "RAM of the device in MB; null if unknown")
    budget_mb: int | None = _f(None, "peak RSS the model may use, in MB; null for no budget")
    storage_mb: int | None = _f(None, "storage available for bundles, in MB; null for no budget")
    lean: bool = _f(False, "memory-lean mode: trade speed for lower peak memory (no prepacking, no arena or "
                           "memory pattern, one decode thread; see docs/TARGETS.md for its measured cost)")


@dataclass(frozen=True)
class QuantizationSpec:
    format: Literal["qdq", "qoperator"] = _f("qdq", "static int8 format")
    activation_type: Literal["uint8", "int8"] = _f("int8", "activation type for int8-static")
    weight_type: Literal["int8", "uint8"] = _f("int8", "weight type for int8 modes")
    reduce_range: bool = _f(False, "7-bit weights, for x86 CPUs without VNNI (avoids u8s8 overflow)")
    per_channel: bool = _f(True, "per-channel weight scales")
    preferred: Literal["none", "int8-static", "int8-dynamic", "int4-weight", "fp16"] = _f(
        "int8-static", "the quantization this device runs best, suggested by budget search")


@dataclass(frozen=True)
class SessionSpec:
    intra_op_threads: int = _f(0, "threads per operator; 0 lets onnxruntime choose (one per core)")
    inter_op_threads: int = _f(0, "threads across operators in parallel mode; 0 lets onnxruntime choose")
    execution_mode: Literal["sequential", "parallel"] = _f("sequential", "operator scheduling")
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = _f("all", "graph optimizations")
    memory_arena: bool = _f(True, "CPU memory arena (faster, holds on to peak memory)")
    memory_pattern: bool = _f(True, "pre-plan activation memory for fixed input shapes")
    prepacking: bool = _f(True, "pre-pack weights for faster GEMMs (costs a second copy during load)")


@dataclass(frozen=True)
class CodecSpec:
    level: int = _f(3, "zstd level used when packaging for this device")
    frame_bytes: int = _f(1024 * 1024, "raw bytes per independently compressed frame")
    threads: int = _f(0, "decode threads at load; 0 for one per core (at most 8)")
    layout: Literal["compressed", "mapped"] = _f(
        "compressed", "bundle layout: compressed (every tensor coded; smallest) or mapped (large initializers "
                      "stored raw and page-aligned, memory-mapped by onnxruntime: faster load, less memory)")
    mapped_alignment: int = _f(4096, "mapped layout: alignment of mapped tensors in the file, a multiple of the "
                                     "device OS's page size (4096, 16384 or 65536)")
    mapped_min_bytes: int = _f(4096, "mapped layout: initializers of at least this many bytes are mapped")


@dataclass(frozen=True)
class Profile:
    name: str = _f("", "profile name, as `--target NAME` takes it")
    description: str = _f("", "what the device is")
    sources: list[str] = _f([], "where the profile's values come from")
    device: DeviceSpec = _f(DeviceSpec(), "the hardware")
    memory: MemorySpec = _f(MemorySpec(), "memory and storage budgets")
    providers: list[str] = _f(["CPUExecutionProvider"], "execution providers, most preferred first")
    quantization: QuantizationSpec = _f(QuantizationSpec(), "quantization defaults")
    session: SessionSpec = _f(SessionSpec(), "onnxruntime session options")
    codec: CodecSpec = _f(CodecSpec(), "lossless coding")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_UNIONS = (typing.Union, types.UnionType)  # Optional[int] and int | None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in _UNIONS:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return {int: "an integer", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str, source: str, strict: bool) -> Any:
    origin = typing.get_origin(tp)

    def wrong() -> TargetError:  # built only on error: naming the type costs more than the check
        return TargetError(f"{source}: {key} must be {_type_name(tp)}, got {json.dumps(value)[:60]}")

    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong()
        return _build(tp, value, key, source, strict)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise wrong()
        return value
    if origin in _UNIONS:
        if value is None and type(None) in typing.get_args(tp):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner[0], value, key, source, strict)
    if origin is list:
        if not isinstance(value, list):
            raise wrong()
        return [_convert(typing.get_args(tp)[0], v, f"{key}[{i}]", source, strict) for i, v in enumerate(value)]
    if tp is int:  # bounded: a recorded target's ram_mb of 10**400 overflowed float math (exit 3)
        if type(value) is not int or not 0 <= value <= MAX_INT:
            raise TargetError(f"{source}: {key} must be a non-negative integer of at most 2**53, got "
                              f"{clip(json.dumps(value), 60)}")
        return value
    if tp in (bool, str) and type(value) is not tp:
        raise wrong()
    return value


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A profile dataclass's resolved field types and names (resolving them costs ~1 ms a class: once)."""
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def _build(cls: type, data: dict[str, Any], prefix: str, source: str, strict: bool) -> Any:
    hints, names = _fields(cls)
    unknown = [key for key in data if key not in names]
    if unknown and strict:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise TargetError(f"{source}: unknown key {where!r} (known: {', '.join(sorted(names))})")
    values = {k: _convert(hints[k], v, f"{prefix}.{k}" if prefix else k, source, strict)
              for k, v in data.items() if k in names}
    return cls(**values)


def profile_from_dict(data: dict[str, Any], source: str = "profile", strict: bool = True) -> Profile:
    """Build a Profile from a decoded JSON object, refusing wrong types by name, and unknown keys too when
    `strict` (a profile someone wrote). A profile recorded in a bundle is read with strict=False, so that a
    bundle made by a newer edgepack, whose profiles know more keys, still loads here (FORMAT.md)."""
    if not isinstance(data, dict):
        raise TargetError(f"{source}: a profile is a JSON object")
    profile = _build(Profile, data, "", source, strict)
    _check_rules(profile, source)
    return profile


def _check_rules(profile: Profile, source: str) -> None:
    """Rules across fields, checked after the types."""
    if not profile.name:
        raise TargetError(f"{source}: name must be a non-empty string")
    if not profile.providers:
        raise TargetError(f"{source}: providers must list at least one execution provider")
    bad = [p for p in profile.providers if not p.endswith("ExecutionProvider")]
    if bad:
        raise TargetError(f"{source}: providers: {bad[0]!r} is not an onnxruntime execution provider name "
                          "(they end in 'ExecutionProvider', e.g. CPUExecutionProvider)")
    device = profile.device
    names = [*device.cpu_features, *(a for r in device.required_features for a in r.split("|"))]
    odd = [f for f in names if not f or f != f.strip().lower() or " " in f]
    if odd:
        raise TargetError(f"{source}: device features: {odd[0]!r} is not a feature name as /proc/cpuinfo writes "
                          "them (lower case, one word)")
    extra = [r for r in device.required_features if not set(r.split("|")) & set(device.cpu_features)]
    if extra:
        raise TargetError(f"{source}: device.required_features lists {extra[0]!r}, which device.cpu_features "
                          "does not: a profile cannot require a feature its own device lacks")
    cores, threads = profile.device.cores, profile.session.intra_op_threads
    if cores and threads > cores:
        raise TargetError(f"{source}: session.intra_op_threads is {threads}, more than the device's "
                          f"{cores} cores (device.cores)")
    if not 1 <= profile.codec.level <= 22:
        raise TargetError(f"{source}: codec.level must be between 1 and 22")
    if not 4096 <= profile.codec.frame_bytes <= 16 * 1024 * 1024:
        raise TargetError(f"{source}: codec.frame_bytes must be between 4096 and 16777216")
    if profile.codec.mapped_alignment not in MAPPED_ALIGNMENTS:
        raise TargetError(f"{source}: codec.mapped_alignment must be one of "
                          f"{', '.join(map(str, MAPPED_ALIGNMENTS))}, got {profile.codec.mapped_alignment}")
    if profile.codec.mapped_min_bytes < 1:
        raise TargetError(f"{source}: codec.mapped_min_bytes must be at least 1")
    counts = {"session.intra_op_threads": profile.session.intra_op_threads,
              "session.inter_op_threads": profile.session.inter_op_threads, "codec.threads": profile.codec.threads}
    for key, value in counts.items():
        if value > MAX_THREADS:  # a bundle records its target: it must not make load() start a million threads
            raise TargetError(f"{source}: {key} must be at most {MAX_THREADS}, got {value}")


def _builtin_dir() -> Any:
    from importlib import resources  # imported here: it costs ~1 MB of RSS that load() does not need

    return resources.files("edgepack.targets")


def builtin_names() -> list[str]:
    """Names of the profiles that ship in targets/."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".json"))


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A built-in profile by name, or a profile file of the user's own by path."""
    text_path = os.fspath(name_or_path)
    if text_path.endswith(".json") or os.sep in text_path or os.path.exists(text_path):
        source = text_path
        try:
            with open(text_path, encoding="utf-8") as f:
                raw = f.read()
        except OSError as e:
            raise TargetError(f"{source}: cannot read the profile: {e.strerror}") from None
    else:
        source = f"target {text_path!r}"
        entry = _builtin_dir() / f"{text_path}.json"
        if not entry.is_file():
            raise TargetError(f"unknown target {text_path!r}; `edgepack targets` lists them: "
                              f"{', '.join(builtin_names())}")
        raw = entry.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise TargetError(f"{source}: not valid JSON ({e})") from None
    return profile_from_dict(data, source)


def host_profile_name() -> str:
    """The generic profile of the machine this runs on."""
    import platform

    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "generic-aarch64"
    return "generic-x86-64"


def resolve(target: str | os.PathLike | Profile | dict | None) -> Profile:
    """A Profile from a name, a path, a dict, a Profile, or None (the host's generic profile)."""
    if isinstance(target, Profile):
        return target
    if isinstance(target, dict):
        return profile_from_dict(target, "target")
    return load_profile(target if target is not None else host_profile_name())


for _spec in (DeviceSpec, MemorySpec, QuantizationSpec, SessionSpec, CodecSpec, Profile):  # at import, not per load
    _fields(_spec)
