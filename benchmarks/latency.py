"""Time to first inference and steady latency of a bundle against plain onnxruntime on the .onnx file.

Each figure comes from a fresh child process; bundle and .onnx alternate round by round and the medians
are printed (benchmarks/common.py), latency percentiles over all the rounds' runs. Time to first inference
runs from the call that opens the model to its first output, with numpy, onnxruntime and edgepack.runtime
already imported on both sides; load CPU is the CPU time of all threads while loading, the figure that a
busy machine disturbs least.

    python benchmarks/latency.py                  # the models the test suite builds
    python benchmarks/latency.py model.onnx ...   # any .onnx (random feeds of the right shapes)
    python benchmarks/latency.py --only mlp50 --rounds 9 --runs 200
"""

from __future__ import annotations

import tempfile

from common import median, models, package, parser, pct, ratio, rounds, table


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=100, help="runs after the first, per process (default 100)")
    args = ap.parse_args()
    from edgepack.runtime.measure_child import measure_child

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, feeds in models(args, tmp):
            bundle = package(path, tmp, args.target)
            r = rounds({"edgepack": lambda bundle=bundle, feeds=feeds: measure_child("bundle", bundle, feeds,
                                                                                   runs=args.runs),
                        "plain": lambda path=path, feeds=feeds: measure_child("onnx", path, feeds, runs=args.runs)},
                       args.rounds)
            a, b = r["edgepack"], r["plain"]
            for key, what in (("first_inference_s", "first inference"), ("open_s", "  open"),
                              ("session_s", "  decode + session"), ("first_run_s", "  first run"),
                              ("load_cpu_s", "load CPU")):
                get = lambda x, key=key: x[key] * 1000
                rows.append([label, what, f"{median(a, get):.1f}", f"{median(b, get):.1f}",
                             f"{ratio(a, b, get):.3f}" if median(b, get) else ""])
            lat_a = [x * 1000 for c in a for x in c["latencies_s"]]
            lat_b = [x * 1000 for c in b for x in c["latencies_s"]]
            for q in (50, 90, 99):
                rows.append([label, f"latency p{q}", f"{pct(lat_a, q):.3f}", f"{pct(lat_b, q):.3f}",
                             f"{pct(lat_a, q) / pct(lat_b, q):.3f}"])
            rows.append([label, "throughput /s", f"{len(lat_a) / sum(lat_a) * 1000:.1f}",
                         f"{len(lat_b) / sum(lat_b) * 1000:.1f}",
                         f"{(len(lat_a) / sum(lat_a)) / (len(lat_b) / sum(lat_b)):.3f}"])
            rows.append([label, "import edgepack.runtime", f"{median(a, lambda x: x['import_s'] * 1000):.1f}", "",
                         ""])
    print(f"milliseconds, medians of {args.rounds} alternating rounds of fresh processes, {args.runs} runs each")
    table(["model", "figure", "edgepack", "plain ort", "ratio"], rows)


if __name__ == "__main__":
    main()
