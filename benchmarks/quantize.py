"""Every quantization mode on the test suite's models: bundle size against the fp32 .onnx, what was lost
against the original on held-out data, and speed against the original, both timed in the same run on this
machine (interleaved, median per run; see packager/fidelity/metrics.py).

    python benchmarks/quantize.py                      # the trained digits CNN and the 17 MB decoder
    python benchmarks/quantize.py --modes int8-static  # some modes only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

MODES = ("int8-static", "int8-dynamic", "int4-weight", "fp16")


def _row(name: str, mode: str, model: str, calibration: str | None, eval_data: str, folder: str) -> str:
    import edgepack
    from edgepack.runtime.errors import EdgepackError

    kw = {"calibration": calibration} if mode in ("int8-static", "fp16") and calibration else {}
    if mode == "int8-static" and not calibration:
        return f"{name:<8} {mode:<13} (no calibration data)"
    try:
        r = edgepack.package(model, os.path.join(folder, f"{mode}.edgepack"), quantize=mode, eval_data=eval_data,
                             **kw)
    except EdgepackError as e:
        return f"{name:<8} {mode:<13} refused: {e}"
    m = next(iter(r.report["fidelity"]["outputs"].values()))
    acc = (f"acc {100 * m['accuracy']:.2f}% ({100 * (m['accuracy'] - m['reference_accuracy']):+.2f} pt)"
           if "accuracy" in m else f"top-1 agree {100 * m.get('top1_agreement', 1):.1f}%")
    s = r.report["speed"]
    return (f"{name:<8} {mode:<13} size {r.ratio:.3f}x  {acc:<26} cosine {m['cosine_mean']:.4f} "
            f"(worst {m['cosine_min']:.4f})  speed {s['ratio']:.2f}x ({s['packaged_ms']:.3g} vs "
            f"{s['reference_ms']:.3g} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    import quant_models

    digits, decoder = quant_models.digits_cnn(), quant_models.tiny_decoder()
    print(f"digits CNN: {os.path.getsize(digits['model']):,} bytes fp32, torch test accuracy "
          f"{100 * digits['torch_accuracy']:.2f}%; decoder: {os.path.getsize(decoder['model']):,} bytes fp32")
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.modes.split(","):
            print(_row("digits", mode, digits["model"], digits["calibration"], digits["eval"], folder), flush=True)
        for mode in args.modes.split(","):
            print(_row("decoder", mode, decoder["model"], None, decoder["eval"], folder), flush=True)


if __name__ == "__main__":
    main()
