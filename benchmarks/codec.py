"""Lossless coding of float weights: size and speed of edgepack's codec against plain zstd, plain byte-plane
zstd and ZipNN, the order-0 entropy bound, and the runtime's multi-threaded decode speed.

Per model, over its float weights (float32, float16, bfloat16 tensors): the stored/raw ratio and the
single-thread compress and decompress MB/s (of raw bytes) of
    zstd-3        each tensor compressed whole with zstd level 3
    planes-3      byte planes (Blosc's shuffle), each plane zstd level 3 or stored raw when not smaller
    edgepack      edgepack's choice per tensor (packager/encode.py), frames of the default size
    zipnn         ZipNN, when the optional `zipnn` package is installed (threads=1; its compress time
                  includes one copy of the input, since ZipNN rewrites its input buffer in place)
and the order-0 entropy bound of the byte planes, as they are and after edgepack's exponent rotation.
Then, per model, the whole file: bundle / .onnx, zstd-3 of the .onnx file / .onnx, packaging MB/s.
Then the decode speed of a 200 MB fp32 model through the runtime (Bundle.read_blob, and the stream load()
feeds onnxruntime), with the runtime's default threads and with one, checked bit-identical.

    python benchmarks/codec.py                      # the models the test suite builds, plus trained ones
    python benchmarks/codec.py model.onnx ...       # any .onnx files too
    python benchmarks/codec.py --levels 1,3,9,19    # the --level trade-off: bundle size and packaging speed
    python benchmarks/codec.py --decode-mb 0        # skip the 200 MB decode measurement
    python benchmarks/codec.py --skip-weights --threads 2   # only the decode table, with 2 threads
    python benchmarks/codec.py --frame-sizes 262144,1048576,4194304   # ratio and decode speed per frame size
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

FLOATS = ("float32", "float16", "bfloat16")
WIDTH = {"float32": 4, "float16": 2, "bfloat16": 2}


def timed(fn, reps: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process, all threads) over `reps` runs. On a shared
    machine the CPU time is the steadier figure: a quiet machine with T free cores decodes at about
    bytes / (CPU seconds / T)."""
    walls, cpus = [], []
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


# --- the models -------------------------------------------------------------------------------------

def trained_digits_mlp(path: str) -> bool:
    """A 64-512-512-10 MLP trained on scikit-learn's digits (seconds), exported to ONNX; False without torch."""
    try:
        import torch
        from sklearn.datasets import load_digits
        from torch import nn
    except ImportError:
        return False
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    net = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(30):
        for i in range(0, len(x), 64):
            loss = nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.onnx.export(net.eval(), (x[:1],), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}}, opset_version=17, dynamo=False)
    return True


def builtin_models(folder: str) -> list[tuple[str, str]]:
    import graphs
    from edgepack.packager.demo import demo_files

    out = []
    model, _ = graphs.mlp_bytes(50)
    onnx.save(model, os.path.join(folder, "mlp50.onnx"))
    out.append(("mlp50 (random fp32)", os.path.join(folder, "mlp50.onnx")))
    out.append(("digits CNN (trained)", demo_files()[0]))
    if trained_digits_mlp(os.path.join(folder, "digits_mlp.onnx")):
        out.append(("digits MLP (trained)", os.path.join(folder, "digits_mlp.onnx")))
    for name, build in sorted(graphs.ALL.items()):
        path = os.path.join(folder, f"graph_{name}.onnx")
        onnx.save(build()[0], path)
        out.append((f"tests/graphs {name}", path))
    return out


def float_weights(path: str) -> list[tuple[str, bytes]]:
    """(dtype, raw bytes) of every float tensor the packager would store."""
    from edgepack.packager.skeleton import split_model

    split = split_model(onnx.load(path))
    return [(t.dtype, bytes(t.data)) for t in split.tensors if t.dtype in FLOATS and len(t.data)]


# --- the methods: compress(dtype, raw) -> stored object; size(stored); decompress(dtype, stored, n) ----

def _split(raw: bytes, width: int) -> list[np.ndarray]:
    grid = np.frombuffer(raw, np.uint8).reshape(-1, width)
    return [np.ascontiguousarray(grid[:, k]) for k in range(width)]


class Zstd:
    name = "zstd-3"

    def __init__(self):
        self.c, self.d = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()

    def compress(self, dtype, raw):
        return self.c.compress(raw)

    def size(self, stored):
        return len(stored)

    def decompress(self, dtype, stored, n):
        return self.d.decompress(stored)


class BytePlanes(Zstd):
    name = "planes-3"

    def compress(self, dtype, raw):
        out = []
        for plane in _split(raw, WIDTH[dtype]):
            z = self.c.compress(plane)
            out.append((True, z) if len(z) < len(plane) else (False, plane.tobytes()))
        return out

    def size(self, stored):
        return sum(len(p) for _, p in stored)

    def decompress(self, dtype, stored, n):
        out = np.empty(n, np.uint8)
        grid = out.reshape(-1, WIDTH[dtype])
        for k, (packed, p) in enumerate(stored):
            grid[:, k] = np.frombuffer(self.d.decompress(p) if packed else p, np.uint8)
        return out


class Edgepack:
    name = "edgepack"

    def __init__(self, level=3):
        self.level = level

    def compress(self, dtype, raw):
        from edgepack.packager.encode import encode

        return encode(memoryview(raw), dtype, self.level)

    def size(self, stored):
        return stored.length

    def decompress(self, dtype, stored, n):
        from edgepack.runtime.codecs import DECODERS

        decoder, out, pos = DECODERS[stored.codec], bytearray(n), 0
        view = memoryview(out)
        for f in stored.frames:
            frame = {"length": len(f.payload), "raw_length": f.raw_length, **f.params}
            decoder.decode_into(memoryview(f.payload), frame, view[pos:pos + f.raw_length])
            pos += f.raw_length
        return out


class Zipnn:
    name = "zipnn"

    def __init__(self):
        from zipnn import ZipNN

        self.coders = {d: ZipNN(input_format="byte", bytearray_dtype=d, threads=1) for d in FLOATS}

    def compress(self, dtype, raw):
        return self.coders[dtype].compress(bytearray(raw))  # it reorders bits of its input in place

    def size(self, stored):
        return len(stored)

    def decompress(self, dtype, stored, n):
        return self.coders[dtype].decompress(stored)


def methods() -> list:
    out = [Zstd(), BytePlanes(), Edgepack()]
    try:
        out.append(Zipnn())
    except ImportError:
        pass
    return out


def entropy_bound(weights, rotate: bool) -> int:
    """Order-0 entropy of each byte plane, summed, in bytes: what a per-plane order-0 coder cannot beat."""
    from edgepack.packager.planes import split_planes

    bits = 0.0
    for dtype, raw in weights:
        for plane in split_planes(raw, WIDTH[dtype], 1 if rotate and dtype != "float16" else 0):
            counts = np.bincount(plane, minlength=256)
            p = counts[counts > 0] / len(plane)
            bits += -(p * np.log2(p)).sum() * len(plane)
    return int(bits / 8)


CLOCK = 1  # single-thread speeds from CPU time (index 1 of timed()): on a shared machine, wall time is noise


def measure(method, weights, reps: int) -> tuple[float, float, float]:
    """(ratio, compress MB/s, decompress MB/s) of `method` over `weights`, checked bit-exact."""
    raw_bytes = sum(len(r) for _, r in weights)
    stored = [method.compress(d, r) for d, r in weights]
    for (d, r), s in zip(weights, stored):
        if bytes(method.decompress(d, s, len(r))) != r:
            raise SystemExit(f"{method.name} did not round-trip a {d} tensor")
    t_c = timed(lambda: [method.compress(d, r) for d, r in weights], reps)[CLOCK]
    t_d = timed(lambda: [method.decompress(d, s, len(r)) for (d, r), s in zip(weights, stored)], reps)[CLOCK]
    return sum(method.size(s) for s in stored) / raw_bytes, raw_bytes / t_c / 1e6, raw_bytes / t_d / 1e6


def weights_table(models, reps: int) -> None:
    ms = methods()
    print("Float weights, single thread: ratio (stored/raw), compress MB/s, decompress MB/s "
          f"(from {'CPU' if CLOCK else 'wall-clock'} time, best of {reps})")
    print(f"{'model':<30} {'MB':>6} " + " ".join(f"{m.name:>22}" for m in ms) + f" {'H0 planes':>9} {'H0 rot':>7}")
    for label, path in models:
        weights = float_weights(path)
        if not weights:
            continue
        raw = sum(len(r) for _, r in weights)
        cells = []
        for m in ms:
            ratio, c, d = measure(m, weights, reps)
            cells.append(f"{ratio:>6.4f} {c:>7.0f} {d:>7.0f}")
        print(f"{label:<30} {raw / 1e6:>6.2f} " + " ".join(f"{c:>22}" for c in cells)
              + f" {entropy_bound(weights, False) / raw:>9.4f} {entropy_bound(weights, True) / raw:>7.4f}")
    if not any(m.name == "zipnn" for m in ms):
        print("(zipnn not installed: pip install zipnn to compare)")


# --- whole files ------------------------------------------------------------------------------------

def files_table(models, levels: list[int], folder: str, reps: int) -> None:
    import edgepack
    from edgepack.runtime import open_bundle

    print("\nWhole files: per --level, bundle/.onnx and packaging MB/s of .onnx (default threads) from wall-clock "
          "and from CPU time;\nzstd-3 of the file / .onnx; the bundle's manifest (fixed costs: target profile, "
          "SHA-256s) in KB")
    print(f"{'model':<30} {'.onnx MB':>8} {'zstd-3':>7} {'manifest':>8} "
          + " ".join(f"{'level ' + str(lv) + ' wall cpu':>16}" for lv in levels))
    for label, path in models:
        size = os.path.getsize(path)
        data = open(path, "rb").read()
        zstd = len(zstandard.ZstdCompressor(level=3).compress(data)) / size
        cells = []
        out = os.path.join(folder, "bundle.edgepack")
        for level in levels:
            result = edgepack.package(path, output=out, level=level)
            wall, cpu = timed(lambda path=path, out=out, level=level: edgepack.package(path, output=out, level=level),
                              reps)
            cells.append(f"{result.bundle_bytes / size:>6.4f} {size / wall / 1e6:>4.0f} {size / cpu / 1e6:>4.0f}")
        with open_bundle(out) as bundle:
            manifest = len(bundle.manifest_bytes) / 1e3
        print(f"{label:<30} {size / 1e6:>8.2f} {zstd:>7.4f} {manifest:>8.1f} " + " ".join(f"{c:>16}" for c in cells))


# --- decoding through the runtime ---------------------------------------------------------------------

def _drain(fifo: str, sink: list) -> None:
    """Read the FIFO to its end, as onnxruntime would, keeping nothing: only the bytes count."""
    buf = bytearray(1 << 20)
    total = 0
    with open(fifo, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    sink.append(total)


def load_stream(path: str, threads: int) -> None:
    """The runtime's load stream (the graph with every frame decoded, hash-checked and spliced in, written
    by `threads` decode workers) passed through a FIFO to a reader, as load() hands it to onnxruntime."""
    from edgepack.runtime.reader import Bundle
    from edgepack.runtime.feeder import Feeder

    with Bundle(path) as bundle, tempfile.TemporaryDirectory() as tmp:
        inline = sorted(bundle.manifest.tensors, key=lambda t: t.splice)
        graph = bytes(bundle.read_graph())
        fifo = os.path.join(tmp, "model.onnx")
        os.mkfifo(fifo)
        sink: list = []
        reader = threading.Thread(target=_drain, args=(fifo, sink))
        reader.start()
        feeder = Feeder(fifo, bundle, graph, inline, threads)
        feeder.start()
        feeder.join()
        reader.join()
        if feeder.error is not None or not feeder.finished:
            raise SystemExit(f"the load stream failed: {feeder.error}")


def decode_speed(mb: int, frame_sizes: list[int], reps: int, folder: str, threads: int) -> None:
    import graphs
    import edgepack
    from edgepack.runtime.host import default_threads
    from edgepack.runtime.reader import Bundle

    model, _ = graphs.mlp_bytes(mb)
    src = os.path.join(folder, f"mlp{mb}.onnx")
    onnx.save(model, src)
    expected = {t.name: hashlib.sha256(t.raw_data).hexdigest() for t in model.graph.initializer}
    del model
    threads = threads or default_threads()
    print(f"\nDecode of a {mb} MB fp32 model through the runtime, bit-identical to the source: output GB/s "
          f"(wall clock, best of {reps}) and CPU seconds per GB of output; default threads here: {threads}")
    print(f"{'frame bytes':>11} {'ratio':>7} {'read_blob 1t':>16} {f'read_blob {threads}t':>16} "
          f"{f'load stream {threads}t':>16}")
    for frame_bytes in frame_sizes:
        out = os.path.join(folder, "big.edgepack")
        edgepack.package(src, output=out, frame_bytes=frame_bytes)
        cells = []
        with Bundle(out) as bundle:
            tensors = bundle.manifest.tensors
            raw = sum(t.raw_length for t in tensors)
            for t in tensors:  # bit-identical: every tensor's bytes hash to the source initializer's
                if hashlib.sha256(bundle.read_blob(t, threads)).hexdigest() != expected[t.name]:
                    raise SystemExit(f"{t.name} did not decode bit-identically")
            for n in (1, threads):
                cells.append(timed(lambda n=n, tensors=tensors: [bundle.read_blob(t, n) for t in tensors], reps))
            ratio = bundle.file_size / os.path.getsize(src)
        cells.append(timed(lambda out=out: load_stream(out, threads), reps))
        print(f"{frame_bytes:>11} {ratio:>7.4f} " + " ".join(
            f"{raw / wall / 1e9:>6.2f} GB/s {cpu / raw * 1e9:>4.2f}s" for wall, cpu in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="more .onnx files to measure")
    ap.add_argument("--levels", default="3", help="zstd levels for the whole-file table (comma-separated)")
    ap.add_argument("--decode-mb", type=int, default=200, help="size of the decode-speed model (0: skip)")
    ap.add_argument("--frame-sizes", default="1048576", help="frame sizes for the decode table")
    ap.add_argument("--threads", type=int, default=0, help="decode threads (default: the runtime's default)")
    ap.add_argument("--skip-weights", action="store_true", help="only the decode table")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (the best is kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = [] if args.skip_weights else builtin_models(folder)
        models += [(os.path.basename(m), m) for m in args.models]
        if not args.skip_weights:
            weights_table(models, args.reps)
            files_table(models, [int(v) for v in args.levels.split(",")], folder, args.reps)
        if args.decode_mb:
            decode_speed(args.decode_mb, [int(v) for v in args.frame_sizes.split(",")], args.reps, folder,
                         args.threads)


if __name__ == "__main__":
    main()
