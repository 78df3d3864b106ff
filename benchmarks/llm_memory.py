"""Generation with a language-model bundle against plain onnxruntime running the same exported model with a
minimal greedy loop: peak RSS (ru_maxrss of a fresh process each), tokens/s, time to first token.

    python benchmarks/llm_memory.py HF_FOLDER [--quantize int4-weight] [--tokens 64] [--runs 3]

The model is exported once (edgepack.packager.convert.from_hf), optionally quantized, saved as an .onnx beside
its tokenizer, and packaged from that file, so both sides run the identical graph. Each side runs in `runs`
fresh processes, alternating; the figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

PLAIN = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
def hwm():  # VmHWM: ru_maxrss is carried over from the parent across fork and exec
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))
path, prompt, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
load = time.perf_counter() - t0
past = {i.name: np.zeros([1, i.shape[1], 0, i.shape[3]], np.float32) for i in s.get_inputs()
        if i.name.startswith("past_key_values.")}
names = [o.name for o in s.get_outputs()]
ids, out, t0 = prompt, [], time.perf_counter()
total = len(prompt)
for step in range(n):
    feeds = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, total), np.int64),
             "position_ids": np.arange(total - len(ids), total, dtype=np.int64)[None], **past}
    r = dict(zip(names, s.run(None, feeds)))
    tok = int(np.argmax(r["logits"][0, -1]))
    if step == 0:
        first = time.perf_counter() - t0
    out.append(tok)
    past = {k.replace("present.", "past_key_values."): v for k, v in r.items() if k.startswith("present.")}
    ids, total = [tok], total + 1
rate = (n - 1) / (time.perf_counter() - t0 - first)
print(json.dumps({"ids": out, "peak_rss_mb": hwm(),
                  "tokens_per_s": rate, "time_to_first_token_s": first, "load_s": load}))
"""

EDGEPACK = r"""
import json, sys, time
from edgepack.runtime import load
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))
path, prompt, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
s = load(path)
load_s = time.perf_counter() - t0
g = s.generate(prompt, n)
print(json.dumps({"ids": g.token_ids, "peak_rss_mb": hwm(),
                  "tokens_per_s": g.tokens_per_s, "time_to_first_token_s": g.time_to_first_token_s,
                  "load_s": load_s}))
"""


def _child(code: str, path: str, prompt: list[int], n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", code, path, json.dumps(prompt), str(n)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--quantize", default="none")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import onnx
    from edgepack.packager.convert.from_hf import TOKENIZER_FILES, from_hf
    from edgepack.runtime.profile import resolve

    import edgepack

    work = tempfile.mkdtemp()
    try:
        source = from_hf(args.folder)
        model = source.model
        if args.quantize != "none":
            from edgepack.packager.quantize.lm_step import quantize_language_model
            from edgepack.packager.quantize.options import make_options

            model = quantize_language_model(model, make_options(args.quantize), resolve(None), source.llm or {}).model
        for name in (*TOKENIZER_FILES, "config.json", "generation_config.json"):
            if os.path.isfile(os.path.join(args.folder, name)):
                shutil.copy(os.path.join(args.folder, name), work)
        onnx_path = os.path.join(work, "model.onnx")
        onnx.save(model, onnx_path)
        bundle = os.path.join(work, "model.edgepack")
        edgepack.package(onnx_path, output=bundle)
        prompt = list(range(2, 10))
        sides: dict[str, list[dict]] = {"onnxruntime": [], "edgepack": []}
        for _ in range(args.runs):
            sides["onnxruntime"].append(_child(PLAIN, onnx_path, prompt, args.tokens))
            sides["edgepack"].append(_child(EDGEPACK, bundle, prompt, args.tokens))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("peak_rss_mb", "tokens_per_s",
                                                                     "time_to_first_token_s", "load_s")}
               for k, v in sides.items()}
        same = sides["onnxruntime"][0]["ids"] == sides["edgepack"][0]["ids"]
        print(f"model {os.path.basename(os.path.normpath(args.folder))} ({args.quantize}), {args.tokens} tokens, "
              f"median of {args.runs} fresh processes each; same tokens: {same}")
        for k, v in med.items():
            print(f"  {k:12s} peak RSS {v['peak_rss_mb']:7.1f} MB  {v['tokens_per_s']:7.1f} tokens/s  first token "
                  f"{v['time_to_first_token_s'] * 1000:6.1f} ms  load {v['load_s'] * 1000:6.1f} ms")
        print(f"  peak RSS ratio edgepack / onnxruntime: "
              f"{med['edgepack']['peak_rss_mb'] / med['onnxruntime']['peak_rss_mb']:.3f} (target <= 1.10)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
