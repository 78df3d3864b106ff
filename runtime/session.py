"""load(): from a bundle to a running onnxruntime session, decoding each tensor once.

How the bytes reach onnxruntime. The bundle stores the graph without its weights, plus, for each tensor,
the offset in the graph where its raw bytes belong (its *splice*). load() hands onnxruntime the path of a
private FIFO and a feeder thread writes the model into it: graph bytes, then each tensor's frames as they
are decoded (on several threads), then more graph bytes; every frame's hash is checked before load()
returns, a weight's while onnxruntime builds the session (_Feeder). onnxruntime parses the stream
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

import array
import errno
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from . import profile as profile_mod
from .compat import TargetWarning, compare, enforce
from .device import DeviceInfo, detect
from .errors import BundleError, InputError, InvalidGraph, RunTimeout, SessionError
from .format import BINDING_EXTERNAL, DTYPES, EXTERNAL_LOCATION_PREFIX, numpy_dtype
from .malloc import pin_mmap_threshold
from .manifest import TensorEntry
from .profile import Profile
from .protowire import ProtoError, scan_model
from .reader import Bundle, check_fits, default_threads, run_parallel, usable_cpus

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(uint32)": np.uint32, "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_, "tensor(string)": np.str_,
}
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# dtypes numpy holds natively, so an OrtValue can wrap them without conversion
_NUMPY_NATIVE = {"float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool"}
_F_SETPIPE_SZ = 1031  # Linux fcntl: set the FIFO's buffer size
_F_GETPIPE_SZ = 1032
_PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size)
_PACE_SLEEP_S = 0.0002  # while waiting for room: onnxruntime reads about 200 KB in this time
_DATA_LOCATION_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


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


def session_options(profile: Profile, threads: int | None = None, lean: bool | None = None) -> ort.SessionOptions:
    """onnxruntime SessionOptions for a profile (the same a plain onnxruntime user would set).

    lean (default: the profile's memory.lean) trades speed for memory: no weight prepacking, no memory
    arena, no memory pattern (docs/TARGETS.md gives its measured cost). The profile's thread counts are
    capped at the CPUs this process may use: more only makes threads wait for each other (a bundle that asks
    for 256 on two cores took 10 s to load); `threads` is taken as given."""
    s = profile.session
    lean = profile.memory.lean if lean is None else lean
    cpus = usable_cpus()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads if threads is not None else min(s.intra_op_threads, cpus)
    so.inter_op_num_threads = min(s.inter_op_threads, cpus)
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if s.execution_mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.graph_optimization_level = _OPT_LEVELS[s.graph_optimization_level]
    so.enable_cpu_mem_arena = s.memory_arena and not lean
    so.enable_mem_pattern = s.memory_pattern and not lean
    if lean or not s.prepacking:
        so.add_session_config_entry("session.disable_prepacking", "1")
    return so


def choose_providers(profile: Profile, available: Sequence[str]) -> tuple[list[str], str | None]:
    """The profile's providers that this onnxruntime build has, in order, with CPU last as a fallback; and,
    when the most preferred one is missing, a note that says so."""
    chosen = [p for p in profile.providers if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    missing = [p for p in profile.providers if p not in available]
    if not missing or profile.providers[0] not in missing:
        return chosen, None
    return chosen, (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not available in this "
                    f"onnxruntime (it has {', '.join(available) or 'none'})")


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
            raise InputError(f"unknown outputs {unknown}; the model's outputs are {self.output_names}")
        prepared = self._prepare(feeds)
        options = ort.RunOptions()  # one per call: setting `terminate` stops this call only
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, setattr, (options, "terminate", True))
            timer.daemon = True
            timer.start()
        try:
            values = self._session.run(names, prepared, options)
        except Exception as e:  # onnxruntime raises its own exception types for bad feeds
            if options.terminate:
                raise RunTimeout(f"{self.path}: the run took longer than {timeout} s and was stopped") from None
            raise InputError(f"onnxruntime could not run the model on these inputs: {_short(e)}") from None
        finally:
            if timer is not None:
                timer.cancel()
        return dict(zip(names, values))

    def generate(self, prompt: Any, max_new_tokens: int = 64, **options: Any) -> Any:
        """Generate text with a language model's KV cache: runtime/generate.py (options: temperature, top_k,
        top_p, stop, on_token, seed)."""
        from .generate import generate

        return generate(self, prompt, max_new_tokens, **options)

    def _prepare(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InputError("feeds must map input names to arrays")
        missing = [i.name for i in self.inputs if i.name not in feeds]
        extra = [k for k in feeds if k not in self.input_names]
        if missing or extra:
            raise InputError(f"inputs {self.input_names} expected; missing {missing}, unknown {extra}")
        out = {}
        for spec in self.inputs:
            value = np.asarray(feeds[spec.name])
            if spec.dtype is not None and value.dtype != spec.dtype:
                raise InputError(f"input {spec.name!r} must be {np.dtype(spec.dtype).name}, got {value.dtype}")
            if len(value.shape) != len(spec.shape) or any(
                    isinstance(d, int) and d != v for d, v in zip(spec.shape, value.shape)):
                raise InputError(f"input {spec.name!r} must have shape {list(spec.shape)}, got {list(value.shape)}")
            out[spec.name] = value
        return out


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type), shape)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:500]


# --- building the session ----------------------------------------------------------------------------

def _check_graph(bundle: Bundle, graph: Any, inline: list[TensorEntry], external: list[TensorEntry]) -> None:
    """The stored graph must take each inline tensor exactly where its splice says, with the manifest's dtype
    and shape; hold no tensor bytes the manifest does not list; and refer to no data outside the bundle."""
    try:
        records = scan_model(memoryview(graph), [(t.splice, t.raw_length) for t in inline], spliced_only=True)
    except ProtoError as e:
        raise InvalidGraph(bundle.path, str(e)) from None
    by_name = {t.name: t for t in external}
    used: set[str] = set()
    for r in records:
        if r.external is not None or r.data_location == _DATA_LOCATION_EXTERNAL:
            entry = _external_entry(bundle, r, by_name, used)
        elif r.splice is not None:
            entry = inline[r.splice]
        else:
            continue
        if DTYPES[entry.dtype][0] != r.data_type or tuple(r.dims) != entry.shape:
            raise InvalidGraph(bundle.path, f"tensor {entry.name!r} is {entry.dtype}{list(entry.shape)} in the "
                                            "manifest but not in the graph")
    unused = set(by_name) - used
    if unused:
        raise InvalidGraph(bundle.path, f"external tensors {sorted(unused)[:5]} are not used by the graph")


def _external_entry(bundle: Bundle, r: Any, by_name: dict[str, TensorEntry], used: set[str]) -> TensorEntry:
    """The manifest entry an externally bound TensorProto names. Its only external-data key is a location
    `edgepack:<its own name>`, and it carries no data of its own: anything else would make onnxruntime read
    a file beside the model, or mix two sources for one tensor."""
    location = (r.external or {}).get("location", "")
    name = location[len(EXTERNAL_LOCATION_PREFIX):]
    if (not location.startswith(EXTERNAL_LOCATION_PREFIX) or name not in by_name or name != r.label
            or set(r.external or {}) != {"location"} or r.data_location != _DATA_LOCATION_EXTERNAL
            or r.splice is not None or r.inline_data):
        raise InvalidGraph(bundle.path, f"tensor {r.label!r} refers to external data {location[:200]!r}; "
                                        "a bundle must be self-contained")
    if name in used:
        raise InvalidGraph(bundle.path, f"tensor {name!r} is bound twice")
    used.add(name)
    return by_name[name]


class _Feeder(threading.Thread):
    """Writes the model stream into the FIFO that onnxruntime reads.

    The stream is the stored graph with each inline tensor's frames spliced in. `threads` workers decode
    frames round-robin, each into buffers of its own, and write each frame (with the graph bytes before it)
    as soon as its turn comes, so memory in flight is two frames per worker, whatever the model's size.

    With `defer`, the frames of weights (_deferrable) are written as soon as they are decoded, and their
    hashes are checked once the stream is complete, by decoding them again while onnxruntime builds the
    session (its single-threaded part, which leaves the other cores idle). load() waits for that check and
    returns no session if it fails, so a session is still only ever built from bytes that match the
    manifest; what changes is that onnxruntime may already have read a corrupt weight when the check fails.
    Everything else (the graph, small and integer tensors, which can steer shapes) is checked before it is
    written.
    """

    def __init__(self, fifo: str, bundle: Bundle, graph: bytes, inline: list[TensorEntry], threads: int,
                 defer: bool = False):
        super().__init__(name="edgepack-feeder", daemon=True)
        self.fifo, self.bundle, self.graph, self.inline, self.threads = fifo, bundle, graph, inline, threads
        self.defer = defer
        self.deferred = [(t, f) for t in inline if self._checked_late(t) for f in t.frames]
        self.error: BaseException | None = None
        self.finished = False

    def run(self) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY)
        except OSError as e:
            self.error = SessionError(f"{self.bundle.path}: cannot open the model stream: {e.strerror}")
            return
        # Both ends are open: the name has served. Removing it now means a second open (onnxruntime's Python
        # wrapper retries a failed session once on the same path) fails at once instead of waiting forever.
        try:
            os.unlink(self.fifo)
        except OSError:
            pass
        try:
            try:
                self._write_model(_Pipe(fd))
                self.finished = True
            finally:
                os.close(fd)  # the end of the stream: onnxruntime stops parsing here
        except BrokenPipeError:
            pass  # onnxruntime stopped reading: its error is the one to report, unless a frame is corrupt
        except BaseException as e:  # a corrupt tensor: reported in preference to onnxruntime's error
            self.error = e
            return
        try:
            self._check_deferred()
        except BaseException as e:
            self.error = e

    def _checked_late(self, tensor: TensorEntry) -> bool:
        return self.defer and _deferrable(tensor)

    def _check_deferred(self) -> None:
        """Decode the deferred frames again and check their hashes, on up to `threads` threads (one core is
        left to onnxruntime)."""
        if not self.deferred:
            return
        local = threading.local()
        largest_raw = max(f.raw_length for _, f in self.deferred)
        largest = max(f.length for _, f in self.deferred)

        def check(tensor: TensorEntry, frame: Any) -> None:
            if not hasattr(local, "out"):
                local.out, local.payload = memoryview(bytearray(largest_raw)), bytearray(largest)
            self.bundle.decode_frame(tensor, frame, local.out[:frame.raw_length], local.payload)

        threads = max(1, min(self.threads, usable_cpus() - 1))
        run_parallel([lambda t=t, f=f: check(t, f) for t, f in self.deferred], threads)

    def _units(self) -> list[tuple[TensorEntry, Any, memoryview, bool]]:
        """(tensor, frame, graph bytes to write before the frame, check its hash now), in stream order."""
        graph = memoryview(self.graph)
        units, pos = [], 0
        for tensor in self.inline:
            check = not self._checked_late(tensor)
            for i, frame in enumerate(tensor.frames):
                units.append((tensor, frame, graph[pos:tensor.splice] if i == 0 else graph[0:0], check))
                pos = tensor.splice
        self.tail = graph[pos:]
        return units

    def _write_model(self, pipe: "_Pipe") -> None:
        units = self._units()
        n = max(1, min(self.threads, len(units)))
        cond = threading.Condition()
        turn = [0]
        errors: list[BaseException] = []

        def fail(e: BaseException) -> None:
            with cond:
                errors.append(e)
                cond.notify_all()

        def worker(k: int) -> None:
            mine = units[k::n]
            if not mine:
                return
            payload = bytearray(max(f.length for _, f, _, _ in mine))
            out = memoryview(bytearray(max(f.raw_length for _, f, _, _ in mine)))
            for i in range(k, len(units), n):
                tensor, frame, prefix, check = units[i]
                try:
                    self.bundle.decode_frame(tensor, frame, out[:frame.raw_length], payload, check)
                except BaseException as e:
                    return fail(e)
                with cond:
                    while turn[0] != i and not errors:
                        cond.wait()
                    if errors:
                        return
                try:
                    pipe.write(prefix)
                    pipe.write(out[:frame.raw_length])
                except BaseException as e:
                    return fail(e)
                with cond:
                    turn[0] += 1
                    cond.notify_all()

        workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise next((e for e in errors if not isinstance(e, BrokenPipeError)), errors[0])
        pipe.write(self.tail)


class _Pipe:
    """The feeder's end of the FIFO, written so that neither side sleeps often.

    onnxruntime reads a FIFO 8 KiB at a time (it sizes its reads by the file's length, and a FIFO has none).
    A writer blocked on a full pipe is woken by each of those reads, to write 8 KiB more: for a 50 MB model,
    about 10,000 context switches when the bytes are ready, 2,100-2,700 in a whole load() against about
    300 paced (docs/PERFORMANCE.md). So on Linux
    the pipe is grown to 1 MiB and a piece of at most half that is written only once it fits whole: the
    writer waits by polling how full the pipe is, and the pipe never runs dry while pieces are ready.
    Elsewhere, or if the pipe cannot be measured, writes simply block.
    """

    def __init__(self, fd: int):
        self.fd, self.capacity, self.piece = fd, 0, _PIPE_BYTES
        if not sys.platform.startswith("linux"):
            return
        try:
            import fcntl
            import select
            import termios
            try:
                self.capacity = fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
            except OSError:  # over the per-user pipe allowance: keep the size it has
                self.capacity = fcntl.fcntl(fd, _F_GETPIPE_SZ)
            self._queued = array.array("i", [0])
            self._ioctl, self._fionread = fcntl.ioctl, termios.FIONREAD
            self._ioctl(fd, self._fionread, self._queued, True)
            # poll reports POLLERR on a pipe whose read end is closed: onnxruntime has stopped reading
            self._poller, self._gone = select.poll(), select.POLLERR | select.POLLHUP
            self._poller.register(fd, select.POLLOUT)
        except (ImportError, OSError, AttributeError):
            self.capacity = 0
            return
        self.piece = max(4096, self.capacity // 2)

    def write(self, data: memoryview) -> None:
        while len(data):
            piece = data[:self.piece]
            if self.capacity:
                self._wait_for_room(len(piece))
            n = os.write(self.fd, piece)
            data = data[n:]

    def _wait_for_room(self, n: int) -> None:
        while True:
            self._ioctl(self.fd, self._fionread, self._queued, True)
            if self.capacity - self._queued[0] >= n:
                return
            if any(events & self._gone for _, events in self._poller.poll(0)):
                raise BrokenPipeError(errno.EPIPE, "onnxruntime closed the model stream")
            time.sleep(_PACE_SLEEP_S)


# Tensors whose hash may be checked while onnxruntime builds the session: weights. Integer tensors wider than
# a byte, booleans and strings can be shapes, indices or axes, and small tensors can be scalars that steer a
# shape (Range, Resize): onnxruntime folds constants while it builds the session, so those are checked
# before it reads them.
DEFER_MIN_BYTES = 64 * 1024
_DEFERRABLE_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int4", "uint4",
                                "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz"})


def _deferrable(tensor: TensorEntry) -> bool:
    return tensor.raw_length >= DEFER_MIN_BYTES and tensor.dtype in _DEFERRABLE_DTYPES


def _release(fifo: str, feeder: _Feeder) -> None:
    """Wait for the feeder: first unblock it if it still waits for a reader (onnxruntime failed before
    opening the FIFO), then let it finish its checks. It always ends: once onnxruntime has closed the FIFO
    its writes fail at once."""
    while feeder.is_alive():
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            break  # the feeder has opened and unlinked the FIFO: it is writing or checking
        feeder.join(0.05)
    feeder.join()


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


def _private_dir() -> str:
    """A new folder only this user can enter, for the FIFO (tempfile would cost ~1 MB of imports)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    for _ in range(100):
        path = os.path.join(base, f"edgepack-{os.getpid()}-{os.urandom(8).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise SessionError(f"cannot create a private folder in {base}")


def _create(bundle: Bundle, so: ort.SessionOptions, providers: list[str], threads: int,
            defer: bool = False) -> tuple[Any, list]:
    manifest = bundle.manifest
    inline = sorted((t for t in manifest.tensors if t.binding != BINDING_EXTERNAL), key=lambda t: t.splice)
    external = [t for t in manifest.tensors if t.binding == BINDING_EXTERNAL]
    graph = bundle.read_graph()  # no copy: a graph may be up to 1 GiB
    _check_graph(bundle, graph, inline, external)
    owned: list[Any] = []
    if external:
        names, values, owned = _decode_external(bundle, external, threads)
        so.add_external_initializers(names, values)
        owned.extend(values)
    if not hasattr(os, "mkfifo"):
        return _create_in_memory(bundle, graph, inline, so, providers, threads), owned
    tmp = _private_dir()
    fifo = os.path.join(tmp, "model.onnx")
    try:
        os.mkfifo(fifo, 0o600)
        feeder = _Feeder(fifo, bundle, graph, inline, threads, defer)
        feeder.start()
        ort_error: BaseException | None = None
        session = None
        try:
            session = ort.InferenceSession(fifo, so, providers=providers, enable_fallback=0)
        except Exception as e:
            ort_error = e
        finally:
            _release(fifo, feeder)
        if feeder.error is not None:
            raise feeder.error
        if ort_error is not None or not feeder.finished:
            raise SessionError(f"{bundle.path}: onnxruntime could not build a session: "
                               f"{_short(ort_error) if ort_error else 'the model stream was cut short'}")
        return session, owned
    finally:
        for remove, target in ((os.unlink, fifo), (os.rmdir, tmp)):
            try:
                remove(target)
            except OSError:
                pass


def _create_in_memory(bundle: Bundle, graph: bytes, inline: list[TensorEntry], so: ort.SessionOptions,
                      providers: list[str], threads: int) -> Any:
    """Platforms without FIFOs: assemble the model in memory (peak memory: one more copy of the weights)."""
    parts, pos = [], 0
    for tensor in inline:
        parts += [graph[pos:tensor.splice], bundle.read_blob(tensor, threads)]
        pos = tensor.splice
    parts.append(graph[pos:])
    try:
        return ort.InferenceSession(b"".join(parts), so, providers=providers, enable_fallback=0)
    except Exception as e:
        raise SessionError(f"{bundle.path}: onnxruntime could not build a session: {_short(e)}") from None


def load(path: str | os.PathLike, target: "str | os.PathLike | Profile | dict | None" = None, *,
         threads: int | None = None, providers: Sequence[str] | None = None, tune_malloc: bool = True,
         force: bool = False, lean: bool | None = None, device: DeviceInfo | None = None,
         public_key: "str | os.PathLike | bytes | None" = None) -> Session:
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
        # bundle's bytes are all checked before onnxruntime reads them (_Feeder).
        defer = public_key is None and not lean and usable_cpus() > 1
        t1 = time.perf_counter()
        session, owned = _create(bundle, so, chosen, decode_threads, defer)
        t2 = time.perf_counter()
        wanted = profile.providers[0] if providers is None else chosen[0]
        differences = _differences(wanted, session.get_providers(), chosen, fallback, notes)
        if differences:
            warnings.warn(f"{bundle.path} (target {profile.name!r}) {'; '.join(differences)}", TargetWarning,
                          stacklevel=2)
        stats = LoadStats(open_s=t1 - t0, session_s=t2 - t1, total_s=t2 - t0,
                          raw_bytes=bundle.manifest.raw_bytes, threads=decode_threads, lean=lean)
        return Session(session, bundle.path, bundle.manifest, profile, stats, owned, device, differences)
    finally:
        bundle.close()


def _profile(bundle: Bundle, target: "str | os.PathLike | Profile | dict | None") -> Profile:
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
