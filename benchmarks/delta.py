"""Delta updates against shipping the whole bundle, and against zstd's own patching, measured in one run.

    python benchmarks/delta.py                          # models from the acceptance cache
    python benchmarks/delta.py --models /tmp/bars-cache/models

For the digits CNN (digits_v1/v2_last/v3_full.onnx: v2 retrains the last Linear layer, v3 fine-tunes every
layer for two epochs; trained by /work/shared/acceptance/lib/models.py) and the tiny transformer
(tiny_lm.onnx, random weights; its "last layer" update moves the output projection by 1% of each weight,
its "fine-tune" moves every weight by 1e-3 of itself: simulated, not trained), and for each model's int8
re-quantization (v1 and the fine-tune, both packaged --quantize int8-dynamic), prints:

  the new bundle's size; the delta's size and its ratio to the bundle; `zstd -19 --long=27
  --patch-from=OLD NEW` (the zstd CLI) of the bundles and of the .onnx files (for int8, the .onnx models
  the bundles hold, rebuilt from them); the delta against the smaller patch; and apply's time (median of 3)
  and peak RSS (VmHWM of a fresh process that imports the runtime and applies), with the same process's
  peak when it only imports the runtime, and the largest tensor, for the memory bound.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

APPLY_CHILD = """
import sys, time
from edgepack.runtime import apply_delta
t0 = time.perf_counter()
if sys.argv[1] != "-":
    apply_delta(sys.argv[1], sys.argv[2], sys.argv[3])
t = time.perf_counter() - t0
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(t, hwm / 1024)
"""


def zstd_patch(old: str, new: str, folder: str) -> int:
    out = os.path.join(folder, "patch.zst")
    subprocess.run(["zstd", "-q", "-f", "-19", "--long=27", f"--patch-from={old}", new, "-o", out], check=True,
                   stderr=subprocess.DEVNULL)
    return os.path.getsize(out)


def onnx_of(bundle: str, out: str) -> str:
    """The .onnx model a bundle holds: its graph with every inline tensor's bytes spliced back in."""
    from edgepack.runtime import open_bundle

    with open_bundle(bundle) as b:
        graph = bytes(b.read_graph())
        pieces, pos = [], 0
        for t in sorted((t for t in b.manifest.tensors if t.splice is not None), key=lambda t: t.splice):
            pieces += [graph[pos:t.splice], bytes(b.read_blob(t))]
            pos = t.splice
        pieces.append(graph[pos:])
    with open(out, "wb") as f:
        f.write(b"".join(pieces))
    return out


def child(args: list[str]) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, "-c", APPLY_CHILD, *args], capture_output=True, text=True, check=True)
    t, mb = proc.stdout.split()
    return float(t), float(mb)


def edited(src: str, out: str, change) -> str:
    model = onnx.load(src)
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        new = change(init.name, arr)
        if new is not None:
            init.CopyFrom(numpy_helper.from_array(new.astype(arr.dtype), init.name))
    onnx.save(model, out)
    return out


def lm_versions(models: str, folder: str) -> tuple[str, str, str]:
    rng = np.random.default_rng(0)
    src = os.path.join(models, "tiny_lm.onnx")
    floats = lambda a: a.dtype == np.float32 and a.size > 1
    last_name = [i.name for i in onnx.load(src).graph.initializer if len(i.dims) == 2][-1]  # the output projection
    last = edited(src, os.path.join(folder, "lm_last.onnx"), lambda n, a: a * (1 + 0.01 * rng.standard_normal(
        a.shape)) if n == last_name and floats(a) else None)
    full = edited(src, os.path.join(folder, "lm_full.onnx"), lambda n, a: a * (1 + 1e-3 * rng.standard_normal(
        a.shape)) if floats(a) else None)
    return src, last, full


def row(label: str, old: str, new: str, old_onnx: str, new_onnx: str, folder: str) -> None:
    from edgepack.packager.delta import make_delta
    from edgepack.runtime import open_bundle

    delta = make_delta(old, new, os.path.join(folder, "u.edgedelta")).bytes
    bundle = os.path.getsize(new)
    p_bundle, p_onnx = zstd_patch(old, new, folder), zstd_patch(old_onnx, new_onnx, folder)
    out = os.path.join(folder, "applied.edgepack")
    runs = [child([old, os.path.join(folder, "u.edgedelta"), out]) for _ in range(3)]
    base_mb = statistics.median(child(["-"])[1] for _ in range(3))
    with open_bundle(new) as b:
        largest = max(t.raw_length for t in b.manifest.tensors) / 2 ** 20
    print(f"| {label} | {bundle:,} | {delta:,} ({delta / bundle:.4f}x) | {p_bundle:,} | {p_onnx:,} | "
          f"{delta / min(p_bundle, p_onnx):.2f}x | {statistics.median(r[0] for r in runs) * 1000:.0f} ms | "
          f"{statistics.median(r[1] for r in runs):.0f} MB ({base_mb:.0f} MB importing only; largest tensor "
          f"{largest:.1f} MB) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = os.environ.get("BARS_CACHE", "/tmp/bars-cache")
    ap.add_argument("--models", default=os.path.join(cache, "models"), help="folder of the acceptance models")
    args = ap.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("the zstd command is needed (apt-get install zstd)")
    import edgepack

    folder = tempfile.mkdtemp(prefix="delta-bench.")
    try:
        m = args.models
        lm = lm_versions(m, folder)
        sets = {"digits CNN": (os.path.join(m, "digits_v1.onnx"), os.path.join(m, "digits_v2_last.onnx"),
                               os.path.join(m, "digits_v3_full.onnx")), "tiny transformer": lm}
        print(f"zstd: {subprocess.run(['zstd', '--version'], capture_output=True, text=True).stdout.strip()}")
        print("| update | new bundle B | delta B (x bundle) | zstd --patch-from bundles B | zstd --patch-from .onnx B "
              "| delta / smaller patch | apply time | apply peak RSS |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (v1, last, full) in sets.items():
            b = {}
            for tag, src in (("v1", v1), ("last", last), ("full", full)):
                b[tag] = edgepack.package(src, output=os.path.join(folder, f"{tag}.edgepack")).path
            for tag, src in (("q1", v1), ("qfull", full)):
                b[tag] = edgepack.package(src, output=os.path.join(folder, f"{tag}.edgepack"),
                                          quantize="int8-dynamic").path
            row(f"{name}: last layer", b["v1"], b["last"], v1, last, folder)
            row(f"{name}: full fine-tune", b["v1"], b["full"], v1, full, folder)
            q1 = onnx_of(b["q1"], os.path.join(folder, "q1.onnx"))
            qf = onnx_of(b["qfull"], os.path.join(folder, "qf.onnx"))
            row(f"{name}: int8 re-quantized", b["q1"], b["qfull"], q1, qf, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
