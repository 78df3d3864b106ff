"""The budget search on the test suite's models: what it chose, what it cost, and the accuracy measured on the
bundle itself (loaded with edgepack.runtime, run on the whole held-out split), against the fp32 original.

    python benchmarks/budget.py              # the digits CNN (tests/digits.py) and the wide-range MLP
    python benchmarks/budget.py --trials     # every trial too

Each scenario prints: trials, search seconds (wall clock on this machine: noisy on a shared one), bundle bytes
and ratio to the .onnx, accuracy drop on the bundle, the share of the weight bytes quantized, what was kept
in float and the pruning ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def _models(folder: str) -> dict[str, dict]:
    import budget_models
    import digits

    path, _, calib, x, y = digits.train(folder)
    np.savez(os.path.join(folder, "calib.npz"), x=calib)
    np.savez(os.path.join(folder, "test.npz"), x=x, labels=y)
    cnn = {"model": path, "calibration": os.path.join(folder, "calib.npz"), "eval": os.path.join(folder, "test.npz")}
    return {"digits CNN": cnn, "wide-range MLP": budget_models.wide_range_mlp()}


SCENARIOS = [  # (model, label, package() keywords)
    ("digits CNN", "1 pt", {"budget": {"max_accuracy_drop": 1.0}}),
    ("digits CNN", "1 pt, 120 KB", {"budget": {"max_accuracy_drop": 1.0, "max_bytes": 120_000}}),
    ("digits CNN", "1 pt, prune 0.7", {"budget": {"max_accuracy_drop": 1.0}, "prune": "channels:0.7"}),
    ("digits CNN", "agreement 0.99", {"budget": {"min_agreement": 0.99}}),
    ("wide-range MLP", "1 pt", {"budget": {"max_accuracy_drop": 1.0}}),
]


def _drop(model: str, bundle: str, eval_data: str) -> float:
    import onnxruntime as ort

    from edgepack.runtime import load

    test = np.load(eval_data)
    name = next(n for n in test.files if n != "labels")
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {name: test[name]})[0]
    out = next(iter(load(bundle).run({name: test[name]}).values()))
    return 100 * float(np.mean(ref.argmax(-1) == test["labels"]) - np.mean(out.argmax(-1) == test["labels"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", action="store_true", help="print every trial")
    args = ap.parse_args()
    import edgepack

    with tempfile.TemporaryDirectory() as folder:
        models = _models(folder)
        for name, label, kw in SCENARIOS:
            m = models[name]
            out = os.path.join(folder, "b.edgepack")
            r = edgepack.package(m["model"], out, quantize="int8-static", calibration=m["calibration"],
                                 eval_data=m["eval"], **kw)
            s = r.report["search"]
            t = s["trials"][s["chosen"]]
            print(f"{name:<15} {label:<16} {len(s['trials']):>2} trials {r.report['search_timing']['seconds']:5.1f} s  "
                  f"{r.bundle_bytes:>8,} bytes ({r.ratio:.3f}x)  drop {_drop(m['model'], out, m['eval']):5.2f} pt  "
                  f"quantized {100 * t['quantized_weight_fraction']:5.1f}%  pruned {t['prune_ratio']:g}  "
                  f"float {t['float_nodes']}")
            if args.trials:
                for x in s["trials"]:
                    fid = f"drop {x['accuracy_drop']:.2f}" if "accuracy_drop" in x else \
                        f"agree {x.get('agreement', float('nan')):.4f}"
                    print(f"    {x['index']:>2} {x['stage']:<9} pruned {x['prune_ratio']:<7g} {x['mode']:<12} "
                          f"{len(x['float_nodes']):>2} float {x.get('bytes', 0):>8,} B  {fid}  "
                          f"{'meets' if x['meets'] else 'misses'}")


if __name__ == "__main__":
    main()
