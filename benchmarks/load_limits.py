"""What the untrusted load budget costs: onnxruntime's constant folding off (LoadLimits.constant_folding).

For each model, one bundle is loaded in this process with the untrusted defaults (rt.UNTRUSTED: constant
folding off) and with folding on (rt.TRUSTED, what a signed bundle gets), alternately, round after round;
printed are the medians of the session build time and of the run latency, and the median per-round ratios
untrusted / trusted (1.00: no cost). Isolation (LoadLimits(seconds=, memory_bytes=)) is timed too: it
builds the session twice, once in a forked child.

    python benchmarks/load_limits.py                       # the models the test suite builds
    python benchmarks/load_limits.py --only mlp50,digits_cnn,convnet --rounds 5 --runs 50
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings

import numpy as np

from common import models, package, parser, table


def _measure(path: str, feeds: dict, limits, runs: int) -> dict:
    import edgepack.runtime as rt

    t0 = time.perf_counter()
    s = rt.load(path, limits=limits)
    load_s = time.perf_counter() - t0
    s.run(feeds)
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(feeds)
        lat.append(time.perf_counter() - t)
    return {"load_s": load_s, "run_s": statistics.median(lat)}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=50, help="runs per load, after a first one (default 50)")
    args = ap.parse_args()
    import edgepack.runtime as rt

    warnings.simplefilter("ignore")
    isolated = rt.LoadLimits(memory_bytes=8 << 30, seconds=600)
    variants = {"untrusted": rt.UNTRUSTED, "trusted": rt.TRUSTED, "isolated": isolated}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, feeds_path in models(args, tmp):
            bundle = package(path, tmp, args.target)
            if feeds_path:
                feeds = dict(np.load(feeds_path))
                feeds.pop("labels", None)
            else:
                s = rt.load(bundle)
                feeds = {i.name: np.zeros([d or 1 for d in i.shape], i.dtype or np.float32) for i in s.inputs}
            res: dict[str, list[dict]] = {k: [] for k in variants}
            for _ in range(args.rounds):
                for name, limits in variants.items():
                    res[name].append(_measure(bundle, feeds, limits, args.runs))
            med = {k: {m: statistics.median(r[m] for r in v) for m in ("load_s", "run_s")} for k, v in res.items()}
            ratio = {m: statistics.median(u[m] / t[m] for u, t in zip(res["untrusted"], res["trusted"]))
                     for m in ("load_s", "run_s")}
            iso = statistics.median(i["load_s"] / u["load_s"] for i, u in zip(res["isolated"], res["untrusted"]))
            rows.append([label, f"{med['trusted']['load_s'] * 1e3:.1f}", f"{med['untrusted']['load_s'] * 1e3:.1f}",
                         f"{ratio['load_s']:.2f}", f"{med['trusted']['run_s'] * 1e3:.3f}",
                         f"{med['untrusted']['run_s'] * 1e3:.3f}", f"{ratio['run_s']:.2f}", f"{iso:.2f}"])
    table(["model", "load ms (folding)", "load ms (no folding)", "ratio", "run ms (folding)",
           "run ms (no folding)", "ratio", "isolated/untrusted load"], rows)


if __name__ == "__main__":
    main()
