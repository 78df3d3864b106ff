"""load(): from a bundle to a running onnxruntime session, decoding each tensor once.

How the bytes reach onnxruntime. The bundle stores the graph without its weights, plus, for each tensor,
the offset in the graph where its raw bytes belong (its *splice*). load() hands onnxruntime the path of a
private FIFO and a feeder thread writes the model into it: graph bytes, then each tensor's frames as they
are decoded (on several threads), then more graph bytes; every frame's hash is checked before load()
returns, a weight's right after it is written (runtime/feeder.py). onnxruntime parses the stream
exactly as it would parse the original .onnx file, so its optimizers see every initializer (outputs are
bit-identical to plain onnxruntime) and it owns every buffer it builds: an initializer it prepacks is freed,
as it is for a plain load. Peak memory stays at plain onnxruntime's plus a few decoded frames in flight.

Measured alternatives (docs/DESIGN.md): caller-owned buffers via add_initializer
peak higher (onnxruntime cannot free what it does not own) and miss optimizer rewrites; in-memory external
files are copied, doubling the weights.

Graphs over protobuf's 2 GB limit bind their large tensors as external initializers instead: decoded into
buffers this session owns and hands to onnxruntime.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from . import profile as profile_mod
from .compat import TargetWarning, compare, enforce
from .device import DeviceInfo, detect
from .errors import BundleError, InputError, RunTimeout, SessionError
from .feeder import short, stream_session
from .format import BINDING_EXTERNAL, LAYOUT_MAPPED, numpy_dtype
from .graphcheck import check_graph
from .limits import LoadLimits, check_dense, check_sizes, default_limits, run_isolated
from .malloc import pin_mmap_threshold
from .mapped import create_mapped
from .manifest import TensorEntry
from .profile import Profile
from .ortconfig import choose_providers, session_options
from .host import check_fits, default_threads, usable_cpus
from .reader import Bundle
from .text import clip

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(uint32)": np.uint32, "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_, "tensor(string)": np.str_,
}
# dtypes numpy holds natively, so an OrtValue can wrap them without conversion
_NUMPY_NATIVE = {"float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool"}


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of the model: name, numpy dtype, and shape (str or None for dynamic dims)."""

    name: str
    dtype: Any
    shape: tuple

    def __str__(self) -> str:
        return self.name

    def __contains__(self, text: str) -> bool:
        """`"past" in spec` looks in the name, as it would if `inputs` listed names."""
        return text in self.name


@dataclass
class LoadStats:
    """Where the time to a ready session went, in seconds: open_s reads the header, manifest and profile and
    checks the device; session_s decodes the graph and tensors and builds the onnxruntime session."""

    open_s: float = 0.0
    session_s: float = 0.0
    total_s: float = 0.0
    raw_bytes: int = 0
    threads: int = 1
    lean: bool = False
    mapped_bytes: int = 0  # mapped layout: bytes of the bundle onnxruntime maps once built (-1: unknown)


class Session:
    """A model ready to run. `run` may be called from several threads at once (onnxruntime's Run is
    thread-safe and this class keeps no per-call state)."""

    def __init__(self, ort_session: ort.InferenceSession, bundle_path: str, manifest: Any, profile: Profile,
                 stats: LoadStats, owned: list[Any], device: DeviceInfo | None = None,
                 notes: Sequence[str] = ()):
        self._session = ort_session
        self._owned = owned  # buffers of externally bound initializers: onnxruntime uses them in place
        self.path = bundle_path
        self.manifest = manifest
        self.profile = profile
        self.stats = stats
        self.device = device      # what load() detected
        self.notes = tuple(notes)  # what the one warning load() gave said, if any
        self.providers = ort_session.get_providers()
        try:
            self.inputs = tuple(_spec(a) for a in ort_session.get_inputs())
            self.outputs = tuple(_spec(a) for a in ort_session.get_outputs())
        except UnicodeDecodeError as e:  # onnxruntime hands back the graph's bytes; Python wants UTF-8
            raise SessionError(f"{bundle_path}: the model's inputs or outputs have names or dimensions that are "
                               f"not UTF-8 text ({e.reason})") from None

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None,
            timeout: float | None = None) -> dict[str, np.ndarray]:
        """Run the model: feeds maps input names to arrays; returns output name -> array.

        timeout: seconds after which the run is stopped (RunTimeout). A model is a program: one from an
        untrusted source can loop for ever (a Loop whose trip count is 2**63), and this bounds it."""
        names = list(outputs) if outputs is not None else self.output_names
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise InputError(f"unknown outputs {clip(unknown, 300)}; the model's outputs are "
                             f"{clip(self.output_names, 300)}")
        prepared = self._prepare(feeds)
        options = ort.RunOptions()  # one per call: setting `terminate` stops this call only
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, setattr, (options, "terminate", True))
            timer.daemon = True
            timer.start()
        started = time.perf_counter()
        try:
            values = self._session.run(names, prepared, options)
        except Exception as e:  # onnxruntime raises its own exception types for bad feeds
            if options.terminate:
                raise RunTimeout(f"{self.path}: the run took longer than {timeout} s and was stopped") from None
            raise InputError(f"onnxruntime could not run the model on these inputs: {short(e)}") from None
        finally:
            if timer is not None:
                timer.cancel()
        took = time.perf_counter() - started
        if timeout is not None and took > timeout:  # finished before onnxruntime saw `terminate`: still late
            raise RunTimeout(f"{self.path}: the run took {took:.3g} s, longer than its timeout of {timeout} s")
        return dict(zip(names, values))

    def generate(self, prompt: Any, max_new_tokens: int = 64, **options: Any) -> Any:
        """Generate text with a language model's KV cache: runtime/generate.py (options: temperature, top_k,
        top_p, stop, on_token, seed, timeout)."""
        from .generate import generate

        return generate(self, prompt, max_new_tokens, **options)

    def _prepare(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InputError("feeds must map input names to arrays")
        missing = [i.name for i in self.inputs if i.name not in feeds]
        extra = [k for k in feeds if k not in self.input_names]
        if missing or extra:
            # clipped: an .npz of 20,000 stray arrays made a 220 KB line
            raise InputError(f"inputs {clip(self.input_names, 300)} expected; missing {clip(missing, 300)}, "
                             f"unknown {clip(extra, 300)}")
        out = {}
        for spec in self.inputs:
            value = np.asarray(feeds[spec.name])
            if spec.dtype is np.str_:  # any length of numpy str, or Python str objects: what onnxruntime takes
                if value.dtype.kind not in "UO":
                    raise InputError(f"input {spec.name!r} must be strings (a numpy str or object array), "
                                     f"got {value.dtype}")
            elif spec.dtype is not None and value.dtype != spec.dtype:
                raise InputError(f"input {spec.name!r} must be {np.dtype(spec.dtype).name}, got {value.dtype}")
            if len(value.shape) != len(spec.shape) or any(
                    isinstance(d, int) and d != v for d, v in zip(spec.shape, value.shape)):
                raise InputError(f"input {spec.name!r} must have shape {list(spec.shape)}, got {list(value.shape)}")
            out[spec.name] = value
        return out


def _spec(arg: Any) -> TensorSpec:
    shape = tuple((d if d > 0 else None) if isinstance(d, int) else (d or None) for d in arg.shape)  # -1: dynamic
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type), shape)


# --- building the session ----------------------------------------------------------------------------

def _decode_external(bundle: Bundle, external: list[TensorEntry], threads: int) -> tuple[list[str], list[Any], list]:
    names, values, owned = [], [], []
    for t in external:
        if t.dtype not in _NUMPY_NATIVE:
            raise BundleError(f"{bundle.path}: tensor {t.name!r} of type {t.dtype} cannot be bound externally")
        data = bundle.read_blob(t, threads)
        array = np.frombuffer(data, numpy_dtype(t.dtype)).reshape(t.shape)
        owned.append(data)
        names.append(t.name)
        values.append(ort.OrtValue.ortvalue_from_numpy(array))
    return names, values, owned


def _create(bundle: Bundle, so: ort.SessionOptions, providers: list[str], threads: int,
            defer: bool, limits: LoadLimits) -> tuple[Any, list]:
    manifest = bundle.manifest
    check_sizes(bundle.path, limits, bundle.file_size, manifest.graph.raw_length, manifest.raw_bytes)
    inline = sorted((t for t in manifest.tensors if t.binding != BINDING_EXTERNAL), key=lambda t: t.splice or 0)
    external = [t for t in manifest.tensors if t.binding == BINDING_EXTERNAL]
    graph = bundle.read_graph()  # no copy: a graph may be up to 1 GiB
    dense, held = check_graph(bundle, graph, inline, external, limits.max_fields(bundle.file_size))
    check_dense(bundle.path, limits, bundle.file_size, manifest.raw_bytes, dense, held)
    owned: list[Any] = []
    if external:
        names, values, owned = _decode_external(bundle, external, threads)
        so.add_external_initializers(names, values)
        owned.extend(values)
    kwargs = limits.ort_kwargs()
    if not hasattr(os, "mkfifo"):
        return _create_in_memory(bundle, graph, inline, so, providers, threads, kwargs), owned
    if limits.isolated:  # the same checked bytes, first in a child process under the limits
        run_isolated(bundle.path, limits, lambda: stream_session(bundle, graph, inline, so, providers, threads,
                                                                 False, kwargs))
    return stream_session(bundle, graph, inline, so, providers, threads, defer, kwargs), owned


def _create_in_memory(bundle: Bundle, graph: bytearray | mmap.mmap, inline: list[TensorEntry], so: ort.SessionOptions,
                      providers: list[str], threads: int, kwargs: dict) -> Any:
    """Platforms without FIFOs: assemble the model in memory (peak memory: one more copy of the weights)."""
    parts, pos = [], 0
    for tensor in inline:
        parts += [graph[pos:tensor.splice], bundle.read_blob(tensor, threads)]
        pos = tensor.splice or 0  # inline tensors always have a splice
    parts.append(graph[pos:])
    try:
        return ort.InferenceSession(b"".join(parts), so, providers=providers, enable_fallback=0, **kwargs)
    except Exception as e:
        raise SessionError(f"{bundle.path}: onnxruntime could not build a session: {short(e)}") from None


def load(path: str | os.PathLike, target: str | os.PathLike | Profile | dict | None = None, *,
         threads: int | None = None, providers: Sequence[str] | None = None, tune_malloc: bool = True,
         force: bool = False, lean: bool | None = None, device: DeviceInfo | None = None,
         public_key: str | os.PathLike | bytes | None = None, limits: LoadLimits | None = None) -> Session:
    """Open a bundle and build a session on it.

    target: a profile name, a profile file, or a Profile; by default the profile the bundle was built for.
    threads: onnxruntime intra-op threads (default: the profile's, capped to the cores this device has).
    providers: override the profile's list (no fallback message then).
    force: run even where this device lacks what the profile requires (DeviceMismatch otherwise).
    lean: memory-lean mode (default: the profile's memory.lean): no prepacking, arena or memory pattern, and
        one decode thread; slower, smaller peak. device: the detected device (default: runtime.device.detect).
    tune_malloc: pin glibc's mmap threshold so freed weights return to the system (runtime/malloc.py).
    public_key: refuse the bundle (SignatureError) unless this key signed it (a PEM file, PEM bytes or the
        32 raw bytes); checked before anything else is read.
    limits: what building the session may cost (runtime/limits.py); by default UNTRUSTED for a bundle loaded
        without public_key (no constant folding, bounded decoding) and TRUSTED for a signed one.

    How this device differs from the profile, and a fallback to another execution provider, are reported
    together in one TargetWarning (and kept in Session.notes).
    """
    t0 = time.perf_counter()
    if tune_malloc:
        pin_mmap_threshold()
    bundle = Bundle(path, public_key)
    try:
        check_fits(bundle.path, bundle.manifest.raw_bytes)  # onnxruntime will hold all of it
        profile = _profile(bundle, target)
        available = ort.get_available_providers()
        device = device or detect(available)
        comparison = compare(profile, device)
        notes = enforce(comparison, profile, bundle.path, force)
        lean = profile.memory.lean if lean is None else lean
        so = session_options(profile, threads if threads is not None else comparison.threads, lean)
        if providers is not None:
            chosen, fallback = list(providers), None
        else:
            chosen, fallback = choose_providers(profile, available)
        decode_threads = 1 if lean else min(profile.codec.threads or default_threads(), device.cores)
        # Check weights' hashes while onnxruntime builds the session, where a core is free for it; a signed
        # bundle's bytes are all checked before onnxruntime reads them (runtime/feeder.py).
        defer = public_key is None and not lean and usable_cpus() > 1
        limits = limits if limits is not None else default_limits(public_key is not None)
        t1 = time.perf_counter()
        mapped_bytes = 0
        if bundle.manifest.layout == LAYOUT_MAPPED:  # onnxruntime maps the large tensors (runtime/mapped.py)
            check_sizes(bundle.path, limits, bundle.file_size, bundle.manifest.graph.raw_length,
                        bundle.manifest.raw_bytes)
            built = create_mapped(bundle, so, chosen, decode_threads, defer, limits)
            session, mapped_bytes = built.session, built.mapped_bytes
            owned: list[Any] = []
        else:
            session, owned = _create(bundle, so, chosen, decode_threads, defer, limits)
        t2 = time.perf_counter()
        wanted = profile.providers[0] if providers is None else chosen[0]
        differences = _differences(wanted, session.get_providers(), chosen, fallback, notes)
        if differences:
            warnings.warn(f"{bundle.path} (target {profile.name!r}) {'; '.join(differences)}", TargetWarning,
                          stacklevel=2)
        stats = LoadStats(open_s=t1 - t0, session_s=t2 - t1, total_s=t2 - t0,
                          raw_bytes=bundle.manifest.raw_bytes, threads=decode_threads, lean=lean,
                          mapped_bytes=mapped_bytes)
        return Session(session, bundle.path, bundle.manifest, profile, stats, owned, device, differences)
    finally:
        bundle.close()


def _profile(bundle: Bundle, target: str | os.PathLike | Profile | dict | None) -> Profile:
    """The profile to load with: the one given, or the one the bundle records (read leniently: FORMAT.md)."""
    if target is not None:
        return profile_mod.resolve(target)
    return profile_mod.profile_from_dict(bundle.manifest.target, f"{bundle.path} (recorded target)", strict=False)


def _differences(wanted: str, used: list[str], chosen: list[str], fallback: str | None,
                 notes: list[str]) -> list[str]:
    """Everything the warning says: the provider the model runs on, then how the device differs."""
    parts = []
    if fallback or (used and used[0] != chosen[0]):
        why = fallback or f"onnxruntime could not start {chosen[0]}"
        parts.append(f"runs on {used[0] if used else 'CPUExecutionProvider'} instead of {wanted}: {why}")
    if notes:
        parts.append("this device differs from the profile: " + "; ".join(notes))
    return parts
