"""Where edgepack's time to a ready session goes, against plain onnxruntime, phase by phase.

Four ways to reach the same session, each in a fresh child process, in alternating rounds (medians):

    plain file      onnxruntime reads the .onnx file (4 MiB reads)
    plain FIFO      onnxruntime reads the same bytes from a FIFO (8 KiB reads: a FIFO has no size), written
                    by edgepack's paced pipe from memory: the cost of the transport alone
    edgepack, copy  load() with each frame's decoding replaced by a copy of its bytes, decoded beforehand:
                    load() without the codec (opening, graph check, malloc setting, feeder, hash checks)
    edgepack        load()

For each: total milliseconds, and onnxruntime's own split of them from its profiler (model_loading_uri:
reading and parsing the stream; session_initialization: optimizing, prepacking, allocating), plus the
opening before onnxruntime starts. Session options are onnxruntime's defaults on both sides (load() applies
the host profile's, which are the same).

    python benchmarks/load_phases.py                       # the 50 MB MLP
    python benchmarks/load_phases.py model.onnx --rounds 11
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from common import median, models, package, parser, ratio, rounds, table

_CHILD = r"""
import glob, json, os, sys, threading, time
import numpy as np
import onnxruntime as ort
import edgepack.runtime.feeder as F
import edgepack.runtime.session as S
from edgepack.runtime.reader import Bundle
kind, onnx_path, bundle_path, tmp = sys.argv[1:5]
prefix = os.path.join(tmp, f"prof-{os.getpid()}")

def profiled(so):
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    return so

data = memoryview(open(onnx_path, "rb").read()) if kind == "plain FIFO" else None
if kind == "edgepack, copy":
    bundle, made = Bundle(bundle_path), {}
    for blob in [bundle.manifest.graph, *bundle.manifest.tensors]:
        for f in blob.frames:
            raw = bytearray(f.raw_length)
            Bundle.decode_frame(bundle, blob, f, memoryview(raw))
            made[(blob.name, f.raw_offset)] = raw
    bundle.close()
    def copy(self, blob, frame, out, payload=None, check=True):
        out[:] = made[(blob.name, frame.raw_offset)]
    Bundle.decode_frame = copy
options = S.session_options
S.session_options = lambda *a, **k: profiled(options(*a, **k))
time.sleep(0.2)  # let numpy's and onnxruntime's start-up threads settle
t0 = time.perf_counter()
if kind == "plain file":
    s = ort.InferenceSession(onnx_path, profiled(ort.SessionOptions()), providers=["CPUExecutionProvider"])
    opened = 0.0
elif kind == "plain FIFO":
    fifo = os.path.join(tmp, f"fifo-{os.getpid()}")
    os.mkfifo(fifo)
    def feed():
        fd = os.open(fifo, os.O_WRONLY)
        os.unlink(fifo)
        pipe = F.Pipe(fd)
        for i in range(0, len(data), 1 << 20):
            pipe.write(data[i:i + (1 << 20)])
        os.close(fd)
    threading.Thread(target=feed, daemon=True).start()
    s = ort.InferenceSession(fifo, profiled(ort.SessionOptions()), providers=["CPUExecutionProvider"])
    opened = 0.0
else:
    session = S.load(bundle_path)
    s, opened = session._session, session.stats.open_s * 1000
total = (time.perf_counter() - t0) * 1000
events = json.load(open(s.end_profiling()))
phases = {e["name"]: e["dur"] / 1000 for e in events if e.get("cat") == "Session"}
for f in glob.glob(prefix + "*"):
    os.unlink(f)
print(json.dumps({"total": total, "open": opened, "parse": phases.get("model_loading_uri", float("nan")),
                  "build": phases.get("session_initialization", float("nan"))}))
"""

KINDS = ("plain file", "plain FIFO", "edgepack, copy", "edgepack")


def child(kind: str, onnx_path: str, bundle: str, tmp: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, onnx_path, bundle, tmp], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = parser(__doc__)
    args = ap.parse_args()
    if not args.models and args.only is None:
        args.only = "mlp50"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, _ in models(args, tmp):
            bundle = package(path, tmp, args.target)
            r = rounds({k: (lambda k=k, path=path, bundle=bundle: child(k, path, bundle, tmp)) for k in KINDS},
                       args.rounds)
            base = r["plain file"]
            for kind in KINDS:
                get = lambda x: x["total"]
                rows.append([label, kind, *(f"{median(r[kind], lambda x, p=p: x[p]):.1f}"
                                            for p in ("open", "parse", "build", "total")),
                             f"{ratio(r[kind], base, get):.3f}"])
    print(f"milliseconds, medians of {args.rounds} alternating rounds of fresh processes; ratio: total against "
          "plain file, median of the per-round ratios")
    table(["model", "how", "open", "parse", "build", "total", "ratio"], rows)


if __name__ == "__main__":
    main()
