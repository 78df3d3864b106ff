"""The budget search on a ~100 MB BERT-like sentence-embedding transformer: how long it takes on this host.

    .venv/bin/python benchmarks/transformer_search.py [--folder DIR] [--min-cosine 0.99]

Builds (once, cached in --folder) a 6-layer encoder, hidden 512, 8 heads, FFN 2048, vocabulary 8,000, mean
pooled to one 512-value embedding per sentence (about 23 M parameters: 93 MB of fp32 weights, random weights
with BERT's initializer scale), exported with torch.onnx; 32 calibration and 32 eval sentences of 32 random
tokens. Then packages it with `--quantize int8-static --min-cosine VALUE` for this host's generic profile and
prints the search's time, trials, sensitivity method and the result. docs/BUDGET.md quotes its output.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def build(folder: str) -> str:
    path = os.path.join(folder, "bert_like.onnx")
    if os.path.exists(path):
        return path
    import torch
    from torch import nn

    torch.manual_seed(0)
    vocab, d, heads, layers, ffn = 8000, 512, 8, 6, 2048

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.pos = nn.Embedding(vocab, d), nn.Embedding(64, d)
            layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True, activation="gelu")
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.emb(ids) + self.pos(torch.arange(ids.shape[1]).unsqueeze(0))
            return self.norm(self.body(x)).mean(1)

    net = Encoder().eval()
    with torch.no_grad():  # BERT's initializer: normal(0, 0.02); every layer its own weights
        for p in net.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
    ids = torch.randint(0, vocab, (1, 32))
    os.makedirs(folder, exist_ok=True)
    torch.onnx.export(net, (ids,), path, input_names=["ids"], output_names=["embedding"],
                      dynamic_axes={"ids": {0: "N", 1: "T"}, "embedding": {0: "N"}}, opset_version=17, dynamo=False)
    rng = np.random.default_rng(0)
    np.savez(os.path.join(folder, "calib.npz"), ids=rng.integers(0, vocab, (32, 32)))
    np.savez(os.path.join(folder, "eval.npz"), ids=rng.integers(0, vocab, (32, 32)))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default="/tmp/edgepack-bert-like")
    ap.add_argument("--min-cosine", type=float, default=0.99)
    args = ap.parse_args()
    import edgepack

    t0 = time.monotonic()
    path = build(args.folder)
    print(f"model: {path}, {os.path.getsize(path) / 1e6:.1f} MB (built or cached in {time.monotonic() - t0:.0f} s)")
    t0 = time.monotonic()
    result = edgepack.package(path, os.path.join(args.folder, "out.edgepack"), quantize="int8-static",
                              calibration=os.path.join(args.folder, "calib.npz"),
                              eval_data=os.path.join(args.folder, "eval.npz"), budget={"min_cosine": args.min_cosine})
    took = time.monotonic() - t0
    import resource

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU time of this process and its "
          f"children {cpu:.0f} s")
    s = result.report["search"]
    chosen = s["trials"][s["chosen"]]
    timing = result.report["search_timing"]
    print(f"package with --min-cosine {args.min_cosine}: {took:.0f} s in all, search {timing['seconds']:.0f} s "
          f"({os.cpu_count()} CPUs), {len(s['trials'])} trials, sensitivity "
          f"{s.get('sensitivity', {}).get('method', 'not needed')} "
          f"({timing.get('sensitivity_seconds', 0):.1f} s)")
    print(f"chose trial {chosen['index']}: {len(chosen['float_nodes'])} nodes in float, worst cosine "
          f"{chosen.get('cosine')}, "
          f"{100 * chosen.get('quantized_weight_fraction', 0):.1f}% of the weight bytes quantized, "
          f"{result.bundle_bytes / 1e6:.1f} MB; format "
          f"{result.report.get('quantization', {}).get('recipe', {}).get('chosen')}")


if __name__ == "__main__":
    main()
