"""A load budget: what an untrusted bundle may make load() and onnxruntime do before a session exists.

`run(timeout=)` bounds a run, but a graph can make onnxruntime work while it *builds* a session: its
constant folding computes every node whose inputs are constants, so a 1,840-byte graph reached 5.2 GB in
14 s (issue 19). load(..., limits=LoadLimits(...)) bounds that work. Without `limits`, load() applies
UNTRUSTED to a bundle loaded without a public key and TRUSTED to one whose signature it checked.

What each field guarantees (README.md, "Loading untrusted bundles"):

    constant_folding   False: onnxruntime's ConstantFolding optimizer is disabled, so building a session
                       computes no node; the graph's other optimizations still run. Costs run-time latency
                       on graphs with foldable constants (docs/PERFORMANCE.md, benchmarks/load_limits.py).
    max_graph_bytes    the most the stored graph may decode to (InvalidGraph beyond), checked from the
                       manifest before it is decoded.
    expansion          the most the graph and tensors together may decode to, per byte of the bundle file
                       (with a floor of EXPANSION_FLOOR bytes), checked from the manifest before anything
                       is decoded: a few KB of zstd cannot ask for gigabytes. Sparse tensors made dense
                       (onnxruntime does so while it builds the session) count too, from the graph's dims,
                       and so do packed integers (int64_data...: a byte each in the graph, 8 in memory) and
                       strings (a few bytes each in the graph, some 90 in memory).
    fields_per_byte    the most protobuf fields the graph walker reads per byte of the bundle file (with a
                       floor of FIELDS_FLOOR), so checking a graph costs time proportional to the file.
    memory_bytes,      isolation: the session is first built in a forked child process whose data size
    seconds            (heap and private mappings, RLIMIT_DATA) is capped at memory_bytes and which is killed
                       after `seconds`; load() raises LoadBudgetExceeded if it fails so, and otherwise builds
                       its own session from the same checked bytes. Costs one more session build.
"""

from __future__ import annotations

import os
import select
import signal
import time
from dataclasses import dataclass
from collections.abc import Callable

from .errors import InvalidGraph, LoadBudgetExceeded, SessionError

FIELDS_FLOOR = 1 << 20
EXPANSION_FLOOR = 64 << 20
DENSE_ELEMENT_BYTES = 8  # a sparse tensor's element once dense: the widest numeric type but complex128


@dataclass(frozen=True)
class LoadLimits:
    """See the module's docstring. None: no bound."""

    constant_folding: bool = False
    max_graph_bytes: int | None = 256 << 20
    expansion: float | None = 64.0
    fields_per_byte: int | None = 16
    memory_bytes: int | None = None
    seconds: float | None = None

    @property
    def isolated(self) -> bool:
        return self.memory_bytes is not None or self.seconds is not None

    def max_fields(self, file_size: int) -> int | None:
        if self.fields_per_byte is None:
            return None
        return max(FIELDS_FLOOR, self.fields_per_byte * file_size)

    def max_decoded(self, file_size: int) -> int | None:
        """The most the graph, tensors and sparse tensors made dense may take, for a file of this size."""
        return None if self.expansion is None else max(EXPANSION_FLOOR, int(self.expansion * file_size))

    def ort_kwargs(self) -> dict:
        """Keyword arguments for onnxruntime.InferenceSession."""
        return {} if self.constant_folding else {"disabled_optimizers": ["ConstantFolding"]}


UNTRUSTED = LoadLimits()
TRUSTED = LoadLimits(constant_folding=True, max_graph_bytes=None, expansion=None)


def default_limits(signed: bool) -> LoadLimits:
    return TRUSTED if signed else UNTRUSTED


def check_sizes(path: str, limits: LoadLimits, file_size: int, graph_bytes: int, raw_bytes: int) -> None:
    """Refuse, from the manifest's figures alone, a bundle that would decode to more than `limits` allow."""
    if limits.max_graph_bytes is not None and graph_bytes > limits.max_graph_bytes:
        raise InvalidGraph(path, f"the graph decodes to {graph_bytes} bytes, over this load's limit of "
                                 f"{limits.max_graph_bytes} (LoadLimits.max_graph_bytes)")
    most = limits.max_decoded(file_size)
    if most is not None and raw_bytes > most:
        raise LoadBudgetExceeded(path, f"its {file_size} bytes decode to {raw_bytes}, over this load's "
                                       f"limit of {most} (LoadLimits.expansion); sign it, or pass limits")


def check_dense(path: str, limits: LoadLimits, file_size: int, raw_bytes: int, dense: list[int],
                held: int = 0) -> None:
    """Refuse a graph whose sparse tensors onnxruntime would make dense (it does so while it builds the session,
    constant folding or not) beyond what `limits` leave beside the `raw_bytes` the bundle decodes to: their
    dims are in the graph, not the manifest, so a few bytes could ask for gigabytes. Counted at
    DENSE_ELEMENT_BYTES an element. So are the `held` units of packed integers and strings (protowire
    GraphNames.held): int64_data holds an element a byte in the graph and eight in onnxruntime, twice (67 MB
    of int64 zeros loaded at +1.1 GB), and an empty string takes 2 bytes there and some 90 in onnxruntime."""
    most = limits.max_decoded(file_size)
    total = DENSE_ELEMENT_BYTES * (sum(dense) + held)
    if held and most is not None and raw_bytes + total > most:
        raise LoadBudgetExceeded(path, f"its sparse tensors made dense, packed integers and strings take {total} "
                                       "bytes when onnxruntime builds the session, beside "
                                       f"the {raw_bytes} it decodes to: over this load's limit of {most} "
                                       "(LoadLimits.expansion); sign it, or pass limits")
    size = DENSE_ELEMENT_BYTES * sum(dense)
    if most is not None and dense and raw_bytes + size > most:
        raise LoadBudgetExceeded(path, f"its sparse tensors become {size} bytes dense when onnxruntime builds the "
                                       f"session, beside the {raw_bytes} it decodes to: over this load's limit of "
                                       f"{most} (LoadLimits.expansion); sign it, or pass limits")


def run_isolated(path: str, limits: LoadLimits, build: Callable[[], object]) -> None:
    """Call `build` in a forked child process under limits.memory_bytes (RLIMIT_DATA) and limits.seconds
    (wall clock, then SIGKILL). Returns if it succeeded; raises LoadBudgetExceeded otherwise."""
    if not hasattr(os, "fork"):
        raise SessionError(f"{path}: isolated loading (LoadLimits.memory_bytes/seconds) needs os.fork")
    import resource

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: build, report one line, and leave without running any cleanup of the parent's
        status = 1
        try:
            os.close(r)
            if limits.memory_bytes is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
            try:
                build()
                message, status = b"ok", 0
            except BaseException as e:  # reported to the parent, which raises
                message = f"{type(e).__name__}: {e}".encode("utf-8", "replace")[:2000]
            os.write(w, message)
        finally:
            os._exit(status)
    os.close(w)
    deadline = None if limits.seconds is None else time.monotonic() + limits.seconds
    chunks: list[bytes] = []
    timed_out = False
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([r], [], [], wait)
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode("utf-8", "replace")
    if timed_out:
        raise LoadBudgetExceeded(path, f"building its session took over {limits.seconds} s "
                                       "(LoadLimits.seconds)")
    if status != 0 or report != "ok":
        why = report or f"the child process ended with status {status}"
        raise LoadBudgetExceeded(path, f"building its session within {limits.memory_bytes} bytes of data "
                                       f"(LoadLimits.memory_bytes) failed: {why[:500]}")
