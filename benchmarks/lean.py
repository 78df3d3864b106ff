"""What memory-lean mode (profile memory.lean, load(lean=True)) saves and costs: peak and steady RSS, time to
first inference and latency, lean against normal, with plain onnxruntime for reference.

Lean mode turns off weight prepacking, the CPU memory arena and the memory pattern, and decodes on one
thread. --ablate also measures each of those alone (through profiles that differ in that one setting),
and lean with 256 KiB frames instead of 1 MiB, to show which part buys what.

    python benchmarks/lean.py                       # the models the test suite builds
    python benchmarks/lean.py --only mlp50,digits_cnn --ablate --rounds 7
    python benchmarks/lean.py model.onnx
"""

from __future__ import annotations

import json
import os
import tempfile

from common import median, models, package, parser, pct, ratio, rounds, table

FIGURES = (("peak_load_mb", "peak RSS during load MB", 1), ("peak_mb", "peak RSS MB", 1),
           ("steady_rss_mb", "steady RSS MB", 1), ("first_inference_s", "first inference ms", 1000),
           ("load_cpu_s", "load CPU ms", 1000))


def ablation_profiles(folder: str, target: str | None) -> dict[str, str]:
    """One profile file per single lean setting."""
    from edgepack.runtime.profile import host_profile_name, load_profile

    base = load_profile(target or host_profile_name()).to_dict()
    changes = {"no prepacking": ("session", "prepacking", False), "no arena": ("session", "memory_arena", False),
               "no memory pattern": ("session", "memory_pattern", False), "1 decode thread": ("codec", "threads", 1)}
    out = {}
    for label, (section, key, value) in changes.items():
        p = json.loads(json.dumps(base))
        p[section][key] = value
        p["name"] = label.replace(" ", "-")
        path = os.path.join(folder, p["name"] + ".json")
        with open(path, "w") as f:
            json.dump(p, f)
        out[label] = path
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--ablate", action="store_true", help="also measure each lean setting alone")
    ap.add_argument("--runs", type=int, default=50, help="runs after the first, per process (default 50)")
    args = ap.parse_args()
    import edgepack
    from edgepack.runtime.measure_child import measure_child

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        profiles = ablation_profiles(tmp, args.target) if args.ablate else {}
        for label, path, feeds in models(args, tmp):
            bundle = package(path, tmp, args.target)
            child = lambda bundle=bundle, feeds=feeds, **kw: (
                lambda: measure_child("bundle", bundle, feeds, runs=args.runs, **kw))
            variants = {"normal": child(lean=False), "lean": child(lean=True)}
            for name, profile in profiles.items():
                variants[name] = child(target=profile, lean=False)
            if args.ablate:
                small = os.path.join(tmp, os.path.basename(path) + ".256k.edgepack")
                edgepack.package(path, output=small, target=args.target, frame_bytes=256 * 1024)
                variants["lean, 256 KiB frames"] = lambda small=small, feeds=feeds: measure_child(
                    "bundle", small, feeds, runs=args.runs, lean=True)
            variants["plain ort"] = lambda path=path, feeds=feeds: measure_child("onnx", path, feeds, runs=args.runs)
            r = rounds(variants, args.rounds)
            for name, results in r.items():
                row = [label, name]
                for key, _, scale in FIGURES:
                    get = lambda x, key=key, scale=scale: x[key] * scale
                    row.append(f"{median(results, get):.1f} ({ratio(results, r['normal'], get):.2f})")
                lat = [x * 1000 for c in results for x in c["latencies_s"]]
                base = [x * 1000 for c in r["normal"] for x in c["latencies_s"]]
                row += [f"{pct(lat, 50):.3f} ({pct(lat, 50) / pct(base, 50):.2f})",
                        f"{pct(lat, 99):.3f} ({pct(lat, 99) / pct(base, 99):.2f})"]
                rows.append(row)
    print(f"medians of {args.rounds} alternating rounds of fresh processes, {args.runs} runs each; "
          "(ratio to normal mode)")
    table(["model", "mode", *[f[1] for f in FIGURES], "p50 ms", "p99 ms"], rows)


if __name__ == "__main__":
    main()
