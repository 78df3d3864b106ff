"""The model stream: the feeder thread that writes a bundle's graph and tensors into the FIFO onnxruntime reads.

Every byte written is checked against its manifest hash by hashing the very buffer that is written, before
the write (the graph, small and integer tensors) or right after it (weights, while onnxruntime parses):
never by reading the file a second time (issue 19, finding 4).
"""

from __future__ import annotations

import array
import errno
import os
import sys
import threading
import time
from typing import Any

from .errors import CorruptTensor, SessionError
from .manifest import TensorEntry
from .reader import Bundle
from .text import error_line

_F_SETPIPE_SZ = 1031  # Linux fcntl: set the FIFO's buffer size
_F_GETPIPE_SZ = 1032
_PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size)
_PACE_SLEEP_S = 0.0002  # while waiting for room: onnxruntime reads about 200 KB in this time


class Feeder(threading.Thread):
    """Writes the model stream into the FIFO that onnxruntime reads.

    The stream is the stored graph with each inline tensor's frames spliced in. `threads` workers decode
    frames round-robin, each into buffers of its own, and write each frame (with the graph bytes before it)
    as soon as its turn comes, so memory in flight is two frames per worker, whatever the model's size.

    With `defer`, the hash of a weight's frame (deferrable) is computed after the frame is written, on
    the very buffer that was written, while onnxruntime parses it: what is hashed is exactly what
    onnxruntime was given, and nothing is read from the file a second time (a security review flipped bytes
    in the file between a write and a re-read: docs/DESIGN.md). load() returns no session if a hash fails;
    what deferral changes is that onnxruntime may already have read the corrupt weight by then. Everything
    else (the graph, small and integer tensors, which can steer shapes) is checked before it is written.
    """

    def __init__(self, fifo: str, bundle: Bundle, graph: bytes, inline: list[TensorEntry], threads: int,
                 defer: bool = False):
        super().__init__(name="edgepack-feeder", daemon=True)
        self.fifo, self.bundle, self.graph, self.inline, self.threads = fifo, bundle, graph, inline, threads
        self.defer = defer
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
                self._write_model(Pipe(fd))
                self.finished = True
            finally:
                os.close(fd)  # the end of the stream: onnxruntime stops parsing here
        except BrokenPipeError:
            pass  # onnxruntime stopped reading: its error is the one to report, unless a frame is corrupt
        except BaseException as e:  # a corrupt tensor: reported in preference to onnxruntime's error
            self.error = e
            return

    def _checked_late(self, tensor: TensorEntry) -> bool:
        return self.defer and deferrable(tensor)

    def _units(self) -> list[tuple[TensorEntry, Any, memoryview, bool]]:
        """(tensor, frame, graph bytes to write before the frame, check its hash now), in stream order."""
        graph = memoryview(self.graph)
        units, pos = [], 0
        for tensor in self.inline:
            check = not self._checked_late(tensor)
            for i, frame in enumerate(tensor.frames):
                units.append((tensor, frame, graph[pos:tensor.splice] if i == 0 else graph[0:0], check))
                pos = tensor.splice or 0  # inline tensors always have a splice
        self.tail = graph[pos:]
        return units

    def _write_model(self, pipe: Pipe) -> None:
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
                if not check and self.bundle.sha256(out[:frame.raw_length]).hexdigest() != frame.sha256:
                    return fail(CorruptTensor(self.bundle.path, tensor.name,
                                              f"SHA-256 mismatch in the frame at raw offset {frame.raw_offset}"))

        workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise next((e for e in errors if not isinstance(e, BrokenPipeError)), errors[0])
        pipe.write(self.tail)


class Pipe:
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


def deferrable(tensor: TensorEntry) -> bool:
    return tensor.raw_length >= DEFER_MIN_BYTES and tensor.dtype in _DEFERRABLE_DTYPES


def release(fifo: str, feeder: Feeder) -> None:
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


def private_dir() -> str:
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




def short(e: BaseException) -> str:
    """The last line of an exception's message (onnxruntime's are long)."""
    return error_line(e, 500, last=True)


def stream_session(bundle: Bundle, graph: Any, inline: list[TensorEntry], so: Any, providers: list[str],
                   threads: int, defer: bool, ort_kwargs: dict) -> Any:
    """An onnxruntime session built from the model stream, fed through a private FIFO (Feeder)."""
    import onnxruntime as ort

    tmp = private_dir()
    fifo = os.path.join(tmp, "model.onnx")
    try:
        os.mkfifo(fifo, 0o600)
        feeder = Feeder(fifo, bundle, graph, inline, threads, defer)
        feeder.start()
        ort_error: BaseException | None = None
        session = None
        try:
            session = ort.InferenceSession(fifo, so, providers=providers, enable_fallback=0, **ort_kwargs)
        except Exception as e:
            ort_error = e
        finally:
            release(fifo, feeder)
        if feeder.error is not None:
            raise feeder.error
        if ort_error is not None or not feeder.finished:
            raise SessionError(f"{bundle.path}: onnxruntime could not build a session: "
                               f"{short(ort_error) if ort_error else 'the model stream was cut short'}")
        return session
    finally:
        for remove, target in ((os.unlink, fifo), (os.rmdir, tmp)):
            try:
                remove(target)
            except OSError:
                pass
