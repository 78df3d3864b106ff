"""Where a mapped bundle's load spends time and memory beyond plain onnxruntime's, piece by piece.

On the 50 MB MLP of tests/graphs.py (or a given .onnx), each figure from fresh child processes, in turn, round
after round (medians):

    hash: map       SHA-256 of every mapped frame as load() checks it: each frame mapped, hashed, unmapped
    hash: read      the same, read into a buffer with preadv first (load()'s fallback)
    hash: memory    SHA-256 of the same bytes already in memory (the floor for OpenSSL's SHA-256)
    hash: built-in  the same with CPython's own SHA-256, which loads no OpenSSL
    build           plain onnxruntime's session on the .onnx with page-aligned external data: wall and CPU
                    time, with onnxruntime's default spinning and with session.intra_op.allow_spinning 0
    import          RSS (MB) that importing load() adds after numpy and onnxruntime, and OpenSSL after it

    python benchmarks/mapped_costs.py --rounds 5
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import onnx
from common import median, parser, table
from mapped import external_copy

_CHILD = r"""
import json, os, resource, sys, time
import numpy as np
import onnxruntime as ort
what, bundle, ext = sys.argv[1:4]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))
out = {}
if what.startswith("hash"):
    import hashlib, _sha256
    from edgepack.runtime import mapped
    from edgepack.runtime.reader import Bundle
    b = Bundle(bundle)
    frames = [f for t in b.manifest.mapped for f in t.frames]
    b.sha256()  # OpenSSL loaded before the clock starts
    data = [b.read_stored(f.offset, f.length) for f in frames] if what in ("hash-memory", "hash-builtin") else None
    t = time.perf_counter()
    for i, f in enumerate(frames):
        if what == "hash-map":
            d = b.sha256(); mapped._hash_mapped(b, f, d)
        elif what == "hash-read":
            d = b.sha256(); mapped._Hasher(b, [], 1)._hash_read(f, d)
        else:
            d = (hashlib.sha256 if what == "hash-memory" else _sha256.sha256)(data[i])
        assert d.hexdigest() == f.sha256
    out["ms"] = (time.perf_counter() - t) * 1000
elif what.startswith("build"):
    so = ort.SessionOptions()
    if what == "build-nospin":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    t, c = time.perf_counter(), cpu()
    ort.InferenceSession(ext, so, providers=["CPUExecutionProvider"])
    out["ms"], out["cpu_ms"] = (time.perf_counter() - t) * 1000, (cpu() - c) * 1000
else:
    before = rss()
    from edgepack.runtime import load
    out["runtime_mb"] = rss() - before
    import hashlib
    hashlib.sha256(b"x").digest()
    out["openssl_mb"] = rss() - before - out["runtime_mb"]
print(json.dumps(out))
"""

KINDS = ("hash-map", "hash-read", "hash-memory", "hash-builtin", "build", "build-nospin", "import")


def child(what: str, bundle: str, ext: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, what, bundle, ext], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    args = parser(__doc__).parse_args()
    import edgepack
    import graphs

    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            path = args.models[0]
        else:
            path = os.path.join(tmp, "mlp50.onnx")
            onnx.save(graphs.mlp_bytes(50)[0], path)
        ext = external_copy(path, tmp, "ext")[0]
        bundle = os.path.join(tmp, "m.edgepack")
        edgepack.package(path, output=bundle, layout="mapped")
        results: dict[str, list[dict]] = {k: [] for k in KINDS}
        for _ in range(args.rounds):
            for k in KINDS:
                results[k].append(child(k, bundle, ext))
    rows = [[k, f"{median(results[k], lambda r: r['ms']):.1f}",
             f"{median(results[k], lambda r: r['cpu_ms']):.1f}" if "cpu_ms" in results[k][0] else ""]
            for k in KINDS if k != "import"]
    print(f"{os.path.basename(path)}, {args.rounds} rounds, medians")
    table(["what", "wall ms", "CPU ms"], rows)
    imp = results["import"]
    print(f"RSS added after numpy and onnxruntime: load() imports {median(imp, lambda r: r['runtime_mb']):.1f} MB, "
          f"then OpenSSL {median(imp, lambda r: r['openssl_mb']):.1f} MB")


if __name__ == "__main__":
    main()
