"""Latency of channel-pruned models against the unpruned ones, measured in the same run.

For each model and ratio, both onnxruntime sessions are timed in alternating rounds (each round times a
block of runs of one, then of the other); the median per-run times and the median of the rounds'
pruned/unpruned ratios are printed, since these machines are noisy. Parameters and FLOPs ratios come from the pruning
report. Reconstruction does not
change shapes, so it is left out here (it changes accuracy, not speed).

    python benchmarks/prune.py                     # the shipped digits CNN and a ResNet-18-style CNN
    python benchmarks/prune.py model.onnx ...      # any .onnx (random feeds of the right shapes)
    python benchmarks/prune.py --ratios 0.3 0.5 --round-to 1 8 --batch 1 16 --rounds 15 --threads 2

`--round-to 8` keeps a multiple of 8 channels per layer: onnxruntime's x86 convolutions work on blocks of 8
or 16 channels, and other counts can make the pruned model slower than the original.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def resnet18ish(path: str) -> str:
    """A CIFAR-style ResNet-18 (64-128-256-512, 32x32 input, random weights): the larger CNN."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def block(cin, cout, stride):
        body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return body, skip

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            specs = [(64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                     (256, 512, 2), (512, 512, 1)]
            pairs = [block(*s) for s in specs]
            self.bodies = nn.ModuleList(p[0] for p in pairs)
            self.skips = nn.ModuleList(p[1] for p in pairs)
            self.head = nn.Linear(512, 10)

        def forward(self, x):
            h = self.stem(x)
            for body, skip in zip(self.bodies, self.skips):
                h = torch.relu(body(h) + skip(h))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))

    net = Net().eval()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), path, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}}, opset_version=17, dynamo=False)
    return path


def feeds_for(session: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for i in session.get_inputs():
        shape = [batch if k == 0 and not isinstance(d, int) else (d if isinstance(d, int) else 1)
                 for k, d in enumerate(i.shape)]
        out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def per_run(s: ort.InferenceSession, feeds, runs: int) -> float:
    t = time.perf_counter()
    for _ in range(runs):
        s.run(None, feeds)
    return (time.perf_counter() - t) / runs


def compare(base: ort.InferenceSession, pruned: ort.InferenceSession, batch: int,
            rounds: int) -> tuple[float, float, float]:
    """(median unpruned s/run, median pruned s/run, median of the rounds' pruned/unpruned ratios)."""
    feeds = feeds_for(base, batch)
    one = max(per_run(base, feeds, 3), 1e-6)
    runs = max(1, int(0.05 / one))  # about 50 ms per block
    a, b = [], []
    for i in range(rounds):
        first, second = (base, pruned) if i % 2 == 0 else (pruned, base)  # neither always runs first
        t1, t2 = per_run(first, feeds, runs), per_run(second, feeds, runs)
        a.append(t1 if first is base else t2)
        b.append(t2 if first is base else t1)
    return statistics.median(a), statistics.median(b), statistics.median(y / x for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=".onnx files (default: the digits CNN and a ResNet-18-style CNN)")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument("--round-to", type=int, nargs="+", default=[1, 8], help="channel multiples to compare")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=15, help="alternating rounds per measurement")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    args = ap.parse_args()

    from edgepack.packager.demo import demo_files
    from edgepack.packager.prune import PruneOptions, prune_model

    with tempfile.TemporaryDirectory() as tmp:
        models = [(os.path.basename(m), m) for m in args.models] or [
            ("digits CNN (demo)", demo_files()[0]),
            ("ResNet-18-style 32x32", resnet18ish(os.path.join(tmp, "r18.onnx")))]
        print(f"onnxruntime {ort.__version__}, {args.threads} threads, {args.rounds} alternating rounds, medians")
        print(f"{'model':<24} {'prune':<14} {'round':>5} {'params':>7} {'FLOPs':>7} {'batch':>5} {'unpruned ms':>11} "
              f"{'pruned ms':>9} {'ratio':>6}")
        for label, path in models:
            model = onnx.load(path)
            base = session(model, args.threads)
            for ratio in args.ratios:
                for multiple in args.round_to:
                    result = prune_model(model, PruneOptions(ratio=ratio, round_to=multiple))
                    pruned = session(result.model, args.threads)
                    rep = result.report
                    for batch in args.batch:
                        a, b, r = compare(base, pruned, batch, args.rounds)
                        print(f"{label:<24} {f'channels:{ratio:g}':<14} {multiple:>5} {rep['params']['ratio']:>7.3f} "
                              f"{rep['flops']['ratio']:>7.3f} {batch:>5} {1e3 * a:>11.3f} {1e3 * b:>9.3f} {r:>6.3f}")
                        sys.stdout.flush()


if __name__ == "__main__":
    main()
