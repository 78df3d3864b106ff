"""Peak and steady RSS of a bundle against plain onnxruntime on the .onnx file, side by side with ratios.

Each figure comes from a fresh child process; the variants alternate round by round and the medians are
printed (benchmarks/common.py). Two baselines: plain onnxruntime as users run it, and plain onnxruntime with
the allocator setting edgepack's load() applies (runtime/malloc.py), which separates what the bundle path
costs from what the allocator setting saves.

    python benchmarks/memory.py                  # the models the test suite builds (50 MB MLP, digits CNN, ...)
    python benchmarks/memory.py model.onnx ...   # any .onnx (random feeds of the right shapes)
    python benchmarks/memory.py --only mlp50 --rounds 7
"""

from __future__ import annotations

import tempfile

from common import median, models, package, parser, ratio, rounds, table


def main() -> None:
    args = parser(__doc__).parse_args()
    from edgepack.runtime.measure_child import measure_child

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, feeds in models(args, tmp):
            bundle = package(path, tmp, args.target)
            r = rounds({"edgepack": lambda bundle=bundle, feeds=feeds: measure_child("bundle", bundle, feeds, runs=10),
                        "plain": lambda path=path, feeds=feeds: measure_child("onnx", path, feeds, runs=10),
                        "pinned": lambda path=path, feeds=feeds: measure_child("onnx", path, feeds, runs=10,
                                                                               pin_malloc=True)},
                       args.rounds)
            for key, what in (("peak_load_mb", "peak during load"), ("peak_mb", "peak"),
                              ("steady_rss_mb", "steady after 10 runs")):
                get = lambda x, key=key: x[key]
                rows.append([label, what, f"{median(r['edgepack'], get):.1f}", f"{median(r['plain'], get):.1f}",
                             f"{ratio(r['edgepack'], r['plain'], get):.3f}", f"{median(r['pinned'], get):.1f}",
                             f"{ratio(r['edgepack'], r['pinned'], get):.3f}"])
    print(f"RSS in MB, medians of {args.rounds} alternating rounds of fresh processes")
    table(["model", "figure", "edgepack", "plain ort", "ratio", "ort+malloc pin", "ratio"], rows)


if __name__ == "__main__":
    main()
