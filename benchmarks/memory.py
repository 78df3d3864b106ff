"""Peak RSS of loading a bundle and running one inference, against plain onnxruntime on the .onnx file.

Each figure comes from a fresh child process (edgepack.runtime.measure); pairs alternate and the median
ratio is printed, since these machines are noisy. Two baselines are printed: plain onnxruntime as users
run it, and plain onnxruntime with the allocator setting edgepack's load() applies (runtime/malloc.py),
which separates what the bundle path costs from what the allocator setting saves.

    python benchmarks/memory.py                 # the models the test suite builds (50 MB MLP, digits CNN)
    python benchmarks/memory.py model.onnx ...  # any .onnx (random feeds of the right shapes)
    python benchmarks/memory.py --pairs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def builtin_models(folder: str) -> list[tuple[str, str, str | None]]:
    import graphs
    from edgepack.packager.demo import demo_files

    model, feeds = graphs.mlp_bytes(50)
    onnx.save(model, os.path.join(folder, "mlp50.onnx"))
    np.savez(os.path.join(folder, "mlp50_feeds.npz"), **feeds)
    demo, samples = demo_files()
    x = np.load(samples)["x"][:1]
    np.savez(os.path.join(folder, "digits_feeds.npz"), x=x)
    return [("mlp50 (50 MB fp32 MLP)", os.path.join(folder, "mlp50.onnx"), os.path.join(folder, "mlp50_feeds.npz")),
            ("digits CNN (demo model)", demo, os.path.join(folder, "digits_feeds.npz"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=".onnx files (default: the models the test suite builds)")
    ap.add_argument("--pairs", type=int, default=5, help="alternating measurement pairs per model")
    args = ap.parse_args()

    import edgepack
    from edgepack.runtime.measure import measure_child

    with tempfile.TemporaryDirectory() as tmp:
        models = [(os.path.basename(m), m, None) for m in args.models] or builtin_models(tmp)
        print(f"{'model':<26} {'edgepack MB':>11} {'plain MB':>9} {'ratio':>6} {'plain+malloc MB':>15} {'ratio':>6}")
        for label, path, feeds in models:
            bundle = os.path.join(tmp, os.path.basename(path) + ".edgepack")
            edgepack.package(path, output=bundle)
            ours, plain, pinned = [], [], []
            for _ in range(args.pairs):
                ours.append(measure_child("bundle", bundle, feeds)["peak_mb"])
                plain.append(measure_child("onnx", path, feeds)["peak_mb"])
                pinned.append(measure_child("onnx", path, feeds, pin_malloc=True)["peak_mb"])
            r1 = statistics.median(o / p for o, p in zip(ours, plain))
            r2 = statistics.median(o / p for o, p in zip(ours, pinned))
            print(f"{label:<26} {statistics.median(ours):>11.1f} {statistics.median(plain):>9.1f} {r1:>6.3f} "
                  f"{statistics.median(pinned):>15.1f} {r2:>6.3f}")


if __name__ == "__main__":
    main()
