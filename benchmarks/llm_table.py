"""The table in docs/LLM.md: each int4 method on a Hugging Face folder, against fp32.

    python benchmarks/llm_table.py HF_FOLDER --text HELDOUT.txt [--calibration TRAIN.txt] [--tokens 64]
                                   [--repeat 5]

For each recipe it packages the folder, then in a fresh process loads the bundle (load time), measures the
perplexity on the held-out text (windows of 128 tokens), generates --tokens tokens greedily from a fixed
prompt --repeat times (tokens/s and time to first token: the median of the repeats) and reports the
process's peak RSS (VmHWM). Bits per weight count the scales and zero points of the quantized weights. The
load average before and after is printed: on a shared machine, timings are only as good as it is idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from edgepack.runtime import load
def hwm():  # VmHWM: ru_maxrss is carried over from the parent across fork and exec
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))
from edgepack.runtime.generate import token_ids_of
from edgepack.runtime.perplexity import perplexity
path, text, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
s = load(path)
load_s = time.perf_counter() - t0
runs = [s.generate("Return a new list containing", n) for _ in range(repeat)]
if len({tuple(g.token_ids) for g in runs}) != 1:
    sys.exit("greedy generation gave different tokens on repeats")
median = lambda xs: sorted(xs)[len(xs) // 2]
ppl = perplexity(s, token_ids_of(s, open(text, encoding="utf-8").read()), 128).perplexity
print(json.dumps({"load_s": load_s, "tokens_per_s": median([g.tokens_per_s for g in runs]),
                  "ttft_s": median([g.time_to_first_token_s for g in runs]), "generated": len(runs[0].token_ids),
                  "perplexity": ppl, "peak_rss_mb": hwm()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--text", required=True)
    ap.add_argument("--calibration", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5, help="generations per bundle; timings are their median")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    import edgepack

    recipes: list[tuple[str, dict]] = [
        ("fp32", {}),
        ("int4 rtn", {"quantize": "int4-weight", "quantize_options": {"int4_method": "rtn"}}),
        ("int4 gptq (self-sampled)", {"quantize": "int4-weight", "quantize_options": {"int4_method": "gptq"}}),
    ]
    if args.calibration:
        recipes.append(("int4 gptq (--calibration)", {"quantize": "int4-weight", "calibration": args.calibration,
                                                      "quantize_options": {"int4_method": "gptq"}}))
    recipes.append(("int8-dynamic", {"quantize": "int8-dynamic"}))
    st = sum(os.path.getsize(os.path.join(args.folder, f)) for f in os.listdir(args.folder)
             if f.endswith(".safetensors"))
    work = tempfile.mkdtemp()
    base = None
    print("| recipe | bundle / safetensors | bits/weight | perplexity | vs fp32 | tokens/s | first token | peak RSS "
          "| load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, kw in recipes:
        out = os.path.join(work, name.replace(" ", "_").replace("(", "").replace(")", "") + ".edgepack")
        r = edgepack.package(args.folder, output=out, **kw)
        child = subprocess.run([sys.executable, "-c", CHILD, out, args.text, str(args.tokens), str(args.repeat)],
                               check=True, capture_output=True, text=True)
        m = json.loads(child.stdout.strip().splitlines()[-1])
        if m["generated"] < args.tokens:
            print(f"({name}: the end-of-sequence token came after {m['generated']} tokens)")
        base = base or m["perplexity"]
        bpw = r.report.get("quantization", {}).get("bits_per_weight", 32 if name == "fp32" else "-")
        print(f"| {name} | {r.bundle_bytes / st:.3f}x | {bpw} | {m['perplexity']:.3f} | "
              f"{100 * (m['perplexity'] / base - 1):+.1f}% | {m['tokens_per_s']:.0f} | {m['ttft_s'] * 1000:.1f} ms | "
              f"{m['peak_rss_mb']:.0f} MB | {m['load_s'] * 1000:.0f} ms |")
        os.remove(out)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
