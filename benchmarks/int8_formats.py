"""int8-static's candidate formats against fp32 on this host, for three kinds of model.

    .venv/bin/python benchmarks/int8_formats.py [--folder DIR] [--target NAME] [--repeat N]

Models (built once with torch, random weights, cached in --folder):
  yolo      a YOLO-style detector: Conv+BN+SiLU, C2f blocks, 320x320 input, 84-channel head (as the
            acceptance check's yolo_like.onnx)
  resnet    a ResNet-style classifier: 4 stages of 2 basic residual blocks (64-512 channels), 224x224, 1000
            classes (ResNet-18's layout)
  tiny-lm   a tiny transformer: 4 pre-norm encoder layers, d 256, vocabulary 2,048, 16 tokens

For each, quantize.recipes measures every candidate exactly as `package --quantize int8-static` does (one
calibration on 8 samples, each candidate's p50 and fp32's interleaved in this process, on the same samples),
--repeat times, and prints each candidate's p50 as a ratio to fp32's measured in the same round.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def _yolo(folder: str) -> tuple[str, dict]:
    import torch
    from torch import nn

    def cbs(i: int, o: int, s: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.SiLU())

    class C2f(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.a, self.b, self.o = cbs(c, c), cbs(c, c), nn.Conv2d(2 * c, c, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            return self.o(torch.cat([x, y + self.b(y)], 1))

    net = nn.Sequential(cbs(3, 16, 2), cbs(16, 32, 2), C2f(32), cbs(32, 64, 2), C2f(64), cbs(64, 128, 2), C2f(128),
                        cbs(128, 256, 2), C2f(256), nn.Conv2d(256, 84, 1))
    return _export(net, folder, "yolo", {"images": (3, 320, 320)})


def _resnet(folder: str) -> tuple[str, dict]:
    from torch import nn

    class Block(nn.Module):
        def __init__(self, i: int, o: int, s: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
            self.c2, self.b2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
            self.down = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o)) if s > 1 or i != o \
                else nn.Identity()

        def forward(self, x):  # type: ignore[no-untyped-def]
            return (self.b2(self.c2(self.b1(self.c1(x)).relu())) + self.down(x)).relu()

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                               nn.MaxPool2d(3, 2, 1)]
    c = 64
    for o, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(c, o, s), Block(o, o, 1)]
        c = o
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))
    return _export(net, folder, "resnet", {"x": (3, 224, 224)})


def _tiny_lm(folder: str) -> tuple[str, dict]:
    import torch
    from torch import nn

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(2048, 256)
            layer = nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
            self.out = nn.Linear(256, 2048, bias=False)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.out(self.body(self.emb(ids)))

    return _export(LM(), folder, "tiny-lm", {"ids": (16,)}, tokens=2048)


def _export(net, folder: str, name: str, inputs: dict, tokens: int = 0) -> tuple[str, dict]:  # type: ignore
    import torch
    from torch import nn

    path = os.path.join(folder, f"{name}.onnx")
    calib = os.path.join(folder, f"{name}_calib.npz")
    if not os.path.exists(path):
        torch.manual_seed(0)
        net.eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                for p in m.parameters(recurse=False):
                    if tokens and p.dim() > 1:
                        nn.init.normal_(p, std=0.02)
        rng = np.random.default_rng(0)
        data = {k: (rng.integers(0, tokens, (8, *s)) if tokens else rng.random((8, *s), dtype=np.float32))
                for k, s in inputs.items()}
        example = tuple(torch.from_numpy(v[:1]) for v in data.values())
        torch.onnx.export(net, example, path, input_names=list(inputs), output_names=["out"],
                          dynamic_axes={**{k: {0: "N"} for k in inputs}, "out": {0: "N"}}, opset_version=17,
                          dynamo=False)
        np.savez(calib, **data)
    return path, {"calibration": calib}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default="/tmp/edgepack-int8-formats")
    ap.add_argument("--target", default=None, help="profile (default: this host's generic one)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated models to measure (yolo, resnet, tiny-lm)")
    args = ap.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    import onnx

    from edgepack.packager.quantize import make_options, resolve
    from edgepack.packager.quantize.recipes import choose, host_runs
    from edgepack.runtime.profile import resolve as profile_of

    profile = profile_of(args.target)
    why = host_runs(profile)
    if why:
        raise SystemExit(f"this host cannot run {profile.name}'s kernels ({why}): nothing to measure here")
    print(f"int8-static candidates on this host for {profile.name}, p50 / fp32 p50 measured in the same round "
          f"({os.cpu_count()} CPUs; {args.repeat} rounds)")
    for name, build in (("yolo", _yolo), ("resnet", _resnet), ("tiny-lm", _tiny_lm)):
        if args.only and name not in args.only.split(","):
            continue
        path, data = build(args.folder)
        model = onnx.load(path)
        opts = resolve(make_options("int8-static", calibration=data["calibration"]), profile)
        rows: dict[str, list[tuple[float, float, float | None]]] = {}
        for _ in range(args.repeat):
            choice = choose(model, opts, profile, {})
            for c in choice.candidates:
                if "p50_ms" in c:
                    rows.setdefault(c["name"], []).append((c["ratio"], c["p50_ms"], c["fidelity"]["cosine"]))
            fp32 = choice.record.get("fp32_p50_ms")
            print(f"  {name}: fp32 {fp32:.3g} ms; chosen {choice.record['chosen']}")
        for cand, values in rows.items():
            ratios = ", ".join(f"{r:.2f}x" for r, _, _ in values)
            cos = values[-1][2]
            print(f"    {cand:<28} {ratios}  (p50 {np.median([v[1] for v in values]):.3g} ms, worst cosine "
                  f"{'-' if cos is None else f'{cos:.4f}'})")


if __name__ == "__main__":
    main()
